// @vitest-environment happy-dom
import { act } from "react";
import { createRoot } from "react-dom/client";
import { describe, expect, it } from "vitest";
import { Frame, RealtimeClient } from "../src/realtime";
import { toAction } from "../../plugins/tags/page";
import { Page, Realtime, useRealtimeData } from "../src/useRealtimeData";

(globalThis as any).IS_REACT_ACT_ENVIRONMENT = true;

/** A client whose rooms the test drives. */
class FakeClient {
  handlers = new Map<string, { on: (f: Frame) => void; gap: () => void }[]>();
  subscribe(guild: string, on: (f: Frame) => void, gap: () => void) {
    const list = this.handlers.get(guild) ?? [];
    list.push({ on, gap });
    this.handlers.set(guild, list);
    return () => this.handlers.set(guild, (this.handlers.get(guild) ?? []).filter((h) => h.on !== on));
  }
  emit(guild: string, f: Frame) {
    for (const h of this.handlers.get(guild) ?? []) h.on(f);
  }
  gap(guild: string) {
    for (const h of this.handlers.get(guild) ?? []) h.gap();
  }
}

interface Tag {
  name: string;
}

function mount(fetchPage: (c: string | number | null) => Promise<Page<Tag>>) {
  const client = new FakeClient();
  const seen: { items: Tag[]; hasMore: boolean; more: () => Promise<void> }[] = [];
  function List() {
    const r = useRealtimeData<Tag>("1", fetchPage, (t) => t.name, toAction);
    seen.push(r);
    return null;
  }
  const root = createRoot(document.createElement("div"));
  act(() =>
    root.render(
      <Realtime.Provider value={client as unknown as RealtimeClient}>
        <List />
      </Realtime.Provider>,
    ),
  );
  return { client, last: () => seen[seen.length - 1], root };
}

const flush = () => act(async () => {});

describe("useRealtimeData", () => {
  it("loads, applies the room's events, pages on, and refetches after missed events", async () => {
    const calls: (string | number | null)[] = [];
    let server: Tag[] = [{ name: "a" }, { name: "b" }, { name: "c" }];
    const fetchPage = async (cursor: string | number | null) => {
      calls.push(cursor);
      const from = cursor === null ? 0 : server.findIndex((t) => t.name === cursor) + 1;
      const items = server.slice(from, from + 2);
      return { items, next: from + 2 < server.length ? items[items.length - 1].name : null };
    };
    const { client, last } = mount(fetchPage);
    await flush();
    expect(last().items.map((t) => t.name)).toEqual(["a", "b"]);
    expect(last().hasMore).toBe(true);

    await act(() => client.emit("1", { event: "tags:tag_created", guildId: "1", data: { tag: { name: "z" } } }));
    await act(() => client.emit("2", { event: "tags:tag_created", guildId: "2", data: { tag: { name: "other" } } }));
    expect(last().items.map((t) => t.name)).toEqual(["a", "b", "z"]);

    await act(() => last().more());
    expect(last().items.map((t) => t.name)).toEqual(["a", "b", "z", "c"]);
    expect(last().hasMore).toBe(false);

    await act(() => client.emit("1", { event: "tags:tag_deleted", guildId: "1", data: { name: "a" } }));
    expect(last().items.map((t) => t.name)).toEqual(["b", "z", "c"]);

    // Events were missed: the list is what the server has now.
    server = [{ name: "q" }];
    await act(() => client.gap("1"));
    await flush();
    expect(last().items.map((t) => t.name)).toEqual(["q"]);
    expect(calls).toEqual([null, "b", null]);
  });
});
