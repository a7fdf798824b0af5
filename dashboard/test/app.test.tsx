// @vitest-environment happy-dom
import { act } from "react";
import { createRoot } from "react-dom/client";
import { describe, expect, it } from "vitest";
import { App } from "../src/App";

(globalThis as any).IS_REACT_ACT_ENVIRONMENT = true;

class NoSocket {
  onmessage = null;
  onclose = null;
  onopen = null;
  send() {}
  close() {}
}

function answer(path: string): unknown {
  if (path === "/api/auth/me") return { userId: "1", name: "Staff", owner: false, csrfToken: "x", locale: "en-US" };
  if (path === "/api/guilds/5") {
    return {
      id: "5",
      plugins: [
        { name: "moderation", description: "cases", settings: true },
        { name: "modmail", description: "mail", settings: true },
        { name: "tags", description: "tags", settings: false },
      ],
    };
  }
  const m = path.match(/^\/api\/guilds\/5\/([\w-]+)\/config$/);
  if (m) return { plugin: m[1], fields: [{ name: "enabled", label: `${m[1]} on`, type: "bool" }], values: { enabled: false } };
  if (path.startsWith("/api/guilds/5/discord")) return { discord: false, channels: [], roles: [] };
  return { items: [], next: null };
}

describe("App", () => {
  it("shows one plugin's page at a time while moving between them", async () => {
    (globalThis as any).WebSocket = NoSocket;
    (globalThis as any).fetch = async (path: string) =>
      new Response(JSON.stringify(answer(String(path).split("?")[0])), { status: 200 });
    history.replaceState(null, "", "/guilds/5/moderation");
    const el = document.createElement("div");
    document.body.append(el);
    const root = createRoot(el);
    await act(async () => root.render(<App />));
    await act(async () => {});
    const forms = () => [...el.querySelectorAll('[data-testid="settings"] span')].map((s) => s.textContent);
    expect(forms()).toEqual(["moderation on"]);
    for (const [path, expected] of [
      ["/guilds/5/modmail", ["modmail on"]],
      ["/guilds/5/tags", []],
      ["/guilds/5/moderation", ["moderation on"]],
    ] as const) {
      await act(async () => {
        history.pushState(null, "", path);
        dispatchEvent(new PopStateEvent("popstate"));
      });
      await act(async () => {});
      expect(forms()).toEqual(expected);
    }
    expect(el.querySelectorAll('[data-testid="tags"]').length).toBe(0);
    await act(async () => root.unmount());
  });
});
