import { describe, expect, it } from "vitest";
import { eventToAction, listReducer } from "../src/reducer";
import { pickLocale } from "../src/i18n";
import en from "../src/locales/en.json";
import de from "../src/locales/de.json";

const reduce = listReducer<{ name: string; uses?: number }>((t) => t.name);

describe("listReducer", () => {
  it("applies created, updated and deleted tags as the gateway announces them", () => {
    let s = reduce({ items: [{ name: "a" }], stale: 0 }, eventToAction("tags:tag_created", { tag: { name: "b" } })!);
    expect(s.items.map((t) => t.name)).toEqual(["a", "b"]);
    s = reduce(s, eventToAction("tags:tag_updated", { tag: { name: "a", uses: 3 } })!);
    expect(s.items[0]).toEqual({ name: "a", uses: 3 });
    s = reduce(s, eventToAction("tags:tag_deleted", { name: "a" })!);
    expect(s.items.map((t) => t.name)).toEqual(["b"]);
    expect(reduce(s, { type: "refetch" }).stale).toBe(1);
  });

  it("puts a new infraction first", () => {
    const r = listReducer<{ caseNumber: number }>((c) => String(c.caseNumber));
    const s = r({ items: [{ caseNumber: 1 }], stale: 0 }, eventToAction("moderation:infraction_created", { infraction: { caseNumber: 2 } })!);
    expect(s.items.map((c) => c.caseNumber)).toEqual([2, 1]);
    expect(eventToAction("welcome:config_updated", {})).toBeNull();
  });
});

describe("locales", () => {
  it("has every English string in German too", () => {
    expect(Object.keys(de).sort()).toEqual(Object.keys(en).sort());
  });
  it("follows the browser's language", () => {
    expect(pickLocale(["de-AT", "en"])).toBe("de");
    expect(pickLocale(["fr-FR", "en-GB"])).toBe("en");
    expect(pickLocale(["ja"])).toBe("en");
  });
});
