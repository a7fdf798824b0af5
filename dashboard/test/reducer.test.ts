import { describe, expect, it } from "vitest";
import { listReducer } from "../src/reducer";
import { toAction as tagEvents } from "../../plugins/tags/page";
import { toAction as caseEvents } from "../../plugins/moderation/page";
import { pickLocale } from "../src/i18n";
import { pluginStrings } from "../src/plugins";
import en from "../src/locales/en.json";
import de from "../src/locales/de.json";

const reduce = listReducer<{ name: string; uses?: number }>((t) => t.name);

describe("listReducer", () => {
  it("applies created, updated and deleted tags as the gateway announces them", () => {
    let s = reduce({ items: [{ name: "a" }], stale: 0 }, tagEvents({ event: "tags:tag_created", data: { tag: { name: "b" } } })!);
    expect(s.items.map((t) => t.name)).toEqual(["a", "b"]);
    s = reduce(s, tagEvents({ event: "tags:tag_updated", data: { tag: { name: "a", uses: 3 } } })!);
    expect(s.items[0]).toEqual({ name: "a", uses: 3 });
    s = reduce(s, tagEvents({ event: "tags:tag_deleted", data: { name: "a" } })!);
    expect(s.items.map((t) => t.name)).toEqual(["b"]);
    expect(reduce(s, { type: "refetch" }).stale).toBe(1);
  });

  it("puts a new infraction first", () => {
    const r = listReducer<{ caseNumber: number }>((c) => String(c.caseNumber));
    const s = r({ items: [{ caseNumber: 1 }], stale: 0 }, caseEvents({ event: "moderation:infraction_created", data: { infraction: { caseNumber: 2 } } }) as any);
    expect(s.items.map((c) => c.caseNumber)).toEqual([2, 1]);
    expect(caseEvents({ event: "welcome:config_updated", data: {} })).toBeNull();
  });
});

describe("locales", () => {
  it("has every English string in German too, the app's and each plugin's", () => {
    expect(Object.keys(de).sort()).toEqual(Object.keys(en).sort());
    const en_ = pluginStrings("en");
    const de_ = pluginStrings("de");
    expect(Object.keys(en_).length).toBeGreaterThan(10);
    expect(Object.keys(de_).sort()).toEqual(Object.keys(en_).sort());
  });
  it("follows the browser's language", () => {
    expect(pickLocale(["de-AT", "en"])).toBe("de");
    expect(pickLocale(["fr-FR", "en-GB"])).toBe("en");
    expect(pickLocale(["ja"])).toBe("en");
  });
});
