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

import { applyEvent, clock } from "../src/pages/Migrations";

describe("the migration page's run", () => {
  const run = {
    id: "r",
    mode: "clone" as const,
    status: "running",
    steps: [{ order: 1, label: "Tags", plugin: "tags", status: "running", done: 0, records: 10, imported: 0, skipped: 0, failed: 0 }],
  };
  it("moves a step's counts while it runs, and says when it stalls until it moves again", () => {
    let r = applyEvent(run, "step_progress", { step: 1, recordIndex: 4, recordTotal: 10, counts: { imported: 3, skipped: 1, failed: 0 } });
    expect(r.steps[0]).toMatchObject({ done: 4, imported: 3, skipped: 1 });
    r = applyEvent(r, "stalled", { step: 1, label: "Tags", stalledSince: 1000 });
    expect(r.stalled).toEqual({ step: 1, label: "Tags", since: 1000 });
    r = applyEvent(r, "step_progress", { step: 1, recordIndex: 5, recordTotal: 10, counts: { imported: 4, skipped: 1, failed: 0 } });
    expect(r.stalled).toBeNull();
    expect(r.steps[0].imported).toBe(4);
    r = applyEvent(r, "step_progress", { step: 1, recordIndex: 6, recordTotal: 10, pace: { perSecond: 2, etaMs: 2000 } });
    expect(r.steps[0].pace).toEqual({ perSecond: 2, etaMs: 2000 });
    expect(clock(2000)).toBe("0:02");
    expect(clock(3_725_000)).toBe("1:02:05");
  });
});

describe("an undo run on the migration page", () => {
  it("counts what it removed, put back and kept, live and at each step's end", () => {
    const run = {
      id: "u",
      mode: "undo" as const,
      status: "running",
      steps: [{ order: 1, label: "Undo tags", plugin: "tags", status: "pending", done: 0, records: 0, imported: 0, skipped: 0, failed: 0 }],
    };
    let r = applyEvent(run, "step_progress", {
      step: 1,
      recordIndex: 3,
      recordTotal: 5,
      counts: { imported: 0, skipped: 1, failed: 0, removed: 1, restored: 1, conflicts: 1 },
    });
    expect(r.steps[0]).toMatchObject({ status: "running", done: 3, removed: 1, restored: 1, conflicts: 1 });
    r = applyEvent(r, "step_complete", {
      step: 1,
      result: { collections: [{ processed: 5, total: 5, removed: 2, restored: 1, conflicts: 1, skipped: 1, inserted: 0, overwritten: 0, failed: 0 }] },
    });
    expect(r.steps[0]).toMatchObject({ status: "completed", done: 5, records: 5, removed: 2, restored: 1, conflicts: 1, imported: 0 });
  });
});

describe("a following run on the migration page", () => {
  it("shows the lag and the changes applied, and forgets a stall", () => {
    const run = { id: "f", mode: "clone" as const, status: "running", steps: [], stalled: { step: 1, label: "Tags", since: 1 } };
    const r = applyEvent(run, "following", { lagMs: 2500, recordIndex: 12 });
    expect(r.following).toEqual({ lagMs: 2500, applied: 12 });
    expect(r.stalled).toBeNull();
  });
});

describe("a run's pace on the migration page", () => {
  it("keeps the whole run's pace from progress events", () => {
    const run = {
      id: "p",
      mode: "clone" as const,
      status: "running",
      steps: [{ order: 1, label: "Tags", plugin: "tags", status: "running", done: 0, records: 10, imported: 0, skipped: 0, failed: 0 }],
    };
    const r = applyEvent(run, "step_progress", { step: 1, recordIndex: 5, runPace: { elapsedMs: 4000, perSecond: 250, etaMs: 60000 } });
    expect(r.pace).toEqual({ elapsedMs: 4000, perSecond: 250, etaMs: 60000 });
    const s = applyEvent(r, "stalled", { step: 1, label: "Tags", collection: "tags", stalledSince: 5 });
    expect(s.stalled).toEqual({ step: 1, label: "Tags", collection: "tags", since: 5 });
  });
});
