// The owners' migration page: Instance Clone and Legacy Import. The run record
// (GET /api/dev/migrations/{id}) is the truth; live progress arrives as owner events over the
// gateway and is applied on top; when events were missed, the record is fetched again.

import { FormEvent, useEffect, useRef, useState } from "react";
import { api, ApiError } from "../api";
import { t } from "../i18n";
import { useRealtime } from "../useRealtimeData";

type Mode = "clone" | "legacy";
/** A run's mode: a migration, or the undo of one. */
type RunMode = Mode | "undo";

interface Step {
  /** Records per second and the time left, while the step runs. */
  pace?: { perSecond: number; etaMs: number | null } | null;
  order: number;
  label: string;
  plugin: string;
  status: string;
  done: number;
  records: number;
  imported: number;
  skipped: number;
  failed: number;
  /** Undo: removed, put back, changed since and kept. */
  removed?: number;
  restored?: number;
  conflicts?: number;
}

interface Run {
  id: string;
  mode: RunMode;
  status: string;
  active?: boolean;
  steps: Step[];
  record?: any;
  /** No progress for a while: the step, and since when (ms). */
  stalled?: { step: number; label: string; collection?: string; since: number } | null;
  /** Following the source's changes: the lag (ms) and the changes applied. */
  following?: { lagMs: number; applied: number } | null;
  /** The whole run's pace: time spent, documents per second, time left. */
  pace?: { elapsedMs: number; perSecond: number; etaMs: number | null } | null;
}

interface HistoryRow {
  runId: string;
  mode: RunMode;
  status: string;
  imported: number;
  startedAt?: string;
}

const num = (n: number | undefined) => Number(n || 0).toLocaleString("en-US");

/** `m:ss`, or `h:mm:ss`. */
export function clock(ms: number): string {
  const secs = Math.ceil(ms / 1000);
  const [h, m, s] = [Math.floor(secs / 3600), Math.floor(secs / 60) % 60, secs % 60];
  const two = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}
const FINAL = ["completed", "failed", "cancelled"];

/** Per-step counts from a step result (clone: its collections; legacy: the same shape). */
export function countsOf(step: any) {
  const cs: any[] = step?.collections || [];
  const sum = (f: string) => cs.reduce((a, c) => a + (c[f] || 0), 0);
  return {
    imported: sum("inserted") + sum("overwritten"),
    skipped: sum("skipped"),
    failed: sum("failed"),
    removed: sum("removed"),
    restored: sum("restored"),
    conflicts: sum("conflicts"),
    done: sum("processed"),
    records: sum("total"),
  };
}

/** A run's state after one owner event (`kind` without the `migration:` prefix). */
export function applyEvent(run: Run, kind: string, e: any): Run {
  if (kind === "stalled")
    return { ...run, stalled: { step: e.step, label: e.label, collection: e.collection, since: e.stalledSince } };
  if (kind === "following") return { ...run, stalled: null, following: { lagMs: e.lagMs ?? 0, applied: e.recordIndex ?? 0 } };
  const steps = run.steps.map((s) => {
    if (s.order !== e.step) return s;
    switch (kind) {
      case "step_start":
        return { ...s, status: "running" };
      case "step_progress":
        return {
          ...s,
          status: "running",
          done: e.recordIndex ?? s.done,
          records: e.recordTotal ?? s.records,
          ...(e.counts ?? {}),
          pace: e.pace ?? s.pace,
        };
      case "step_complete":
        return {
          ...s,
          ...countsOf(e.result),
          pace: null,
          status: "completed",
          done: e.recordIndex ?? countsOf(e.result).done,
          records: e.recordTotal ?? countsOf(e.result).records,
        };
      default:
        return s;
    }
  });
  return { ...run, steps, stalled: null, pace: e.runPace ?? run.pace };
}

function fromRecord(rec: any): Run {
  return {
    id: rec.runId,
    mode: rec.mode,
    status: rec.status,
    active: rec.active,
    record: rec,
    following: rec.following ? { lagMs: rec.lagMs ?? 0, applied: rec.followApplied ?? 0 } : null,
    steps: rec.steps.map((s: any) => ({ order: s.order, label: s.label, plugin: s.plugin, status: s.status, ...countsOf(s) })),
  };
}

/** A run marked running whose process is gone. */
function interruptedRun(run: Run) {
  return run.status === "running" && run.active === false;
}

function statusClass(status: string, rec: any) {
  if (status === "completed") return rec && rec.failed > 0 ? "warn" : "ok";
  if (status === "running") return "running";
  if (status === "failed") return "bad";
  return "warn";
}

export function Migrations({ owner }: { owner: boolean }) {
  const client = useRealtime();
  const [mode, setMode] = useState<Mode>("clone");
  const [error, setError] = useState<ApiError | null>(null);
  // A plan; with `confirm`, the options to start the run with once the owner confirms.
  const [plan, setPlan] = useState<{ mode: Mode; steps: any[]; sync?: boolean; confirm?: Record<string, unknown> } | null>(null);
  const [run, setRun] = useState<Run | null>(null);
  // The plan of an undo, and whether conflicts are to be undone too.
  const [undoPlan, setUndoPlan] = useState<{ runId: string; plan: any; force: boolean } | null>(null);
  const [history, setHistory] = useState<HistoryRow[]>([]);
  const [busy, setBusy] = useState(false);
  const runRef = useRef<Run | null>(null);
  runRef.current = run;

  const loadHistory = () => api<HistoryRow[]>("/api/dev/migrations").then(setHistory, () => {});
  const refresh = async (id: string) => {
    try {
      const rec = await api<any>(`/api/dev/migrations/${encodeURIComponent(id)}`);
      if (!runRef.current || runRef.current.id === id) setRun(fromRecord(rec));
    } catch (e: any) {
      setError(e);
    }
  };
  const watch = (id: string) => {
    setPlan(null);
    setUndoPlan(null);
    setRun({ id, mode, status: "running", steps: [] });
    return refresh(id);
  };

  useEffect(() => {
    if (owner) loadHistory();
  }, [owner]);
  useEffect(() => {
    if (!client || !owner) return;
    return client.onOwner(
      (f) => {
        if (!f.event.startsWith("migration:")) return;
        const kind = f.event.slice(10);
        const e = f.data;
        const current = runRef.current;
        if (!current || current.id !== e.runId) {
          // A run started elsewhere (CLI, Discord, another tab) shows up here too.
          if (kind === "step_start" && (!current || FINAL.includes(current.status))) watch(e.runId);
          if (kind === "complete" || kind === "error") loadHistory();
          return;
        }
        if (kind === "complete" || kind === "error") {
          refresh(current.id).then(loadHistory);
          return;
        }
        setRun((r) => (r && r.id === e.runId ? applyEvent(r, kind, e) : r));
      },
      () => {
        if (runRef.current) refresh(runRef.current.id);
        loadHistory();
      },
    );
  }, [client, owner]);

  if (!owner) {
    return (
      <main data-testid="not-owner">
        <h2>{t("migrations.title")}</h2>
        <p className="error" role="alert">{t("migrations.owners-only")}</p>
      </main>
    );
  }

  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = e.currentTarget;
    const body: Record<string, unknown> = {};
    for (const el of Array.from(form.elements) as HTMLInputElement[]) {
      if (!el.name) continue;
      if (el.type === "checkbox") body[el.name] = el.checked;
      else if (el.value.trim()) body[el.name] = el.value.trim();
    }
    setError(null);
    setBusy(true);
    try {
      // Always the plan first: a run starts only once its plan was seen and confirmed.
      const r = await api<any>(`/api/dev/migrations/${mode}`, { method: "POST", body: { ...body, dryRun: true } });
      setPlan({ mode, steps: r.steps, sync: !!r.sync, confirm: body.dryRun ? undefined : body });
      setRun(null);
    } catch (err: any) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const confirm = async () => {
    if (!plan?.confirm) return;
    setError(null);
    setBusy(true);
    try {
      const r = await api<any>(`/api/dev/migrations/${plan.mode}`, { method: "POST", body: { ...plan.confirm, dryRun: false } });
      // Its first step's event may have come first and the page be watching it already:
      // starting over would blank the steps it has shown.
      if (runRef.current?.id !== r.runId) await watch(r.runId);
      loadHistory();
    } catch (err: any) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  // Undo: always the plan first (what would be removed, put back, kept), then Confirm.
  const planUndo = async (runId: string, force: boolean) => {
    setError(null);
    setBusy(true);
    try {
      const p = await api<any>(`/api/dev/migrations/${encodeURIComponent(runId)}/undo`, { method: "POST", body: { dryRun: true, force } });
      setUndoPlan({ runId, plan: p, force });
    } catch (err: any) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const confirmUndo = async () => {
    if (!undoPlan) return;
    setError(null);
    setBusy(true);
    try {
      const r = await api<any>(`/api/dev/migrations/${encodeURIComponent(undoPlan.runId)}/undo`, {
        method: "POST",
        body: { force: undoPlan.force },
      });
      if (runRef.current?.id !== r.runId) await watch(r.runId);
      loadHistory();
    } catch (err: any) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const totals = run
    ? run.steps.reduce(
        (a, s) => ({
          imported: a.imported + s.imported,
          skipped: a.skipped + s.skipped,
          failed: a.failed + s.failed,
          removed: a.removed + (s.removed || 0),
          restored: a.restored + (s.restored || 0),
          conflicts: a.conflicts + (s.conflicts || 0),
        }),
        { imported: 0, skipped: 0, failed: 0, removed: 0, restored: 0, conflicts: 0 },
      )
    : null;
  const isUndo = run?.mode === "undo";
  const undoable =
    run && !isUndo && run.record && run.record.journal && !run.record.undoneBy && !run.record.journalPrunedAt && (FINAL.includes(run.status) || interruptedRun(run));
  const completed = run ? run.steps.filter((s) => s.status === "completed").length : 0;
  const interrupted = !!run && interruptedRun(run);
  const shownStatus = interrupted ? "interrupted" : run?.status;

  return (
    <main className="migrations" data-testid="migrations">
      <h2>{t("migrations.title")}</h2>
      <nav className="tabs" role="tablist">
        {(["clone", "legacy"] as Mode[]).map((m) => (
          <button key={m} role="tab" aria-selected={mode === m} data-mode={m} onClick={() => (setMode(m), setError(null))}>
            {t(`migrations.${m}`)}
          </button>
        ))}
      </nav>
      {mode === "clone" ? (
        <form className="migration-form" data-mode="clone" onSubmit={submit} key="clone">
          <p className="muted">{t("migrations.clone.about")}</p>
          <label>{t("migrations.source")} <input name="source" autoComplete="off" spellCheck={false} placeholder="mongodb://user:pass@old-host:27017" required /></label>
          <label>{t("migrations.sourceDb")} <input name="sourceDb" placeholder={t("migrations.sourceDb.placeholder")} /></label>
          <label>{t("migrations.guild")} <input name="guildId" placeholder={t("migrations.guild.placeholder")} /></label>
          <label className="check"><input type="checkbox" name="overwrite" /> {t("migrations.overwrite")}</label>
          <label className="check"><input type="checkbox" name="sync" /> {t("migrations.sync")}</label>
          <label className="check"><input type="checkbox" name="follow" /> {t("migrations.follow")}</label>
          <label className="check"><input type="checkbox" name="allowKeyMismatch" /> {t("migrations.keyMismatch")}</label>
          <label className="check"><input type="checkbox" name="dryRun" /> {t("migrations.dryRun")}</label>
          <button type="submit" disabled={busy}>{t("migrations.clone.plan")}</button>
        </form>
      ) : (
        <form className="migration-form" data-mode="legacy" onSubmit={submit} key="legacy">
          <p className="muted">{t("migrations.legacy.about")}</p>
          <label>{t("migrations.legacySource")} <input name="source" autoComplete="off" spellCheck={false} placeholder="mongodb://old-host:27017" required /></label>
          <label>{t("migrations.legacyDb")} <input name="sourceDb" placeholder={t("migrations.sourceDb.placeholder")} /></label>
          <label>{t("migrations.guild")} <input name="guildId" placeholder={t("migrations.guild.placeholder")} /></label>
          <label>{t("migrations.modmail")} <input name="modmailCollection" placeholder="modmail" /></label>
          <label className="check"><input type="checkbox" name="dryRun" /> {t("migrations.dryRun")}</label>
          <button type="submit" disabled={busy}>{t("migrations.legacy.plan")}</button>
        </form>
      )}
      {error && (
        <p id="form-error" className="alert" role="alert">
          {error.message} ({error.code})
        </p>
      )}

      {plan && (
        <section id="plan">
          <h3>
            {t("migrations.plan")} <small className="muted">{t(plan.confirm ? "migrations.plan.confirm-note" : "migrations.plan.note")}</small>
          </h3>
          {plan.confirm && (
            <div className="actions">
              <button id="confirm" onClick={confirm} disabled={busy}>
                {t("migrations.confirm")}
              </button>
              <button id="back" className="link" onClick={() => setPlan(null)}>
                {t("migrations.back")}
              </button>
            </div>
          )}
          <table>
            <thead>
              <tr>
                {(plan.mode === "clone"
                  ? ["step", "what", "found", "insert", "skip", "remap", "invalid", "dangling", ...(plan.sync ? ["update", "gone"] : [])]
                  : ["step", "what", "found", "import", "skip", "fail"]
                ).map((h) => (
                  <th key={h}>{t("migrations.col." + h)}</th>
                ))}
              </tr>
            </thead>
            <tbody id="plan-body">
              {plan.steps.map((s: any) => {
                const sum = (f: string) => (s.collections || []).reduce((a: number, c: any) => a + (c[f] || 0), 0);
                return plan.mode === "clone" ? (
                  <tr key={s.order} data-insert={sum("toInsert") + sum("toOverwrite")} data-update={sum("toUpdate")} data-gone={sum("gone")}>
                    <td>{s.order}</td>
                    <td>{s.label}</td>
                    <td>{num(sum("found"))}</td>
                    <td>{num(sum("toInsert") + sum("toOverwrite"))}</td>
                    <td>{num(sum("toSkip"))}</td>
                    <td>{num(sum("toRemap"))}</td>
                    <td>{num(sum("invalid"))}</td>
                    <td>{num(sum("dangling"))}</td>
                    {plan.sync && (
                      <>
                        <td>{num(sum("toUpdate"))}</td>
                        <td>{num(sum("gone"))}</td>
                      </>
                    )}
                  </tr>
                ) : (
                  <tr key={s.order}>
                    <td>{s.order}</td>
                    <td>{s.label}</td>
                    <td>{num(s.found)}</td>
                    <td>{num(s.toImport)}</td>
                    <td>{num(s.toSkip)}</td>
                    <td>{num(s.errors)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </section>
      )}

      {run && (
        <section id="run">
          <h3>
            {t(`migrations.${run.mode}`)} <code id="run-id">{run.id}</code>{" "}
            <span id="run-status" className={`pill ${statusClass(shownStatus!, run.record)}`}>{t("migrations.status." + shownStatus)}</span>
          </h3>
          <progress id="run-bar" max={run.steps.length || 1} value={run.status === "completed" ? run.steps.length || 1 : completed} />
          <p id="run-counts" className="muted">
            {isUndo
              ? t("migrations.undo.counts", {
                  completed,
                  total: run.steps.length,
                  removed: num(totals!.removed),
                  restored: num(totals!.restored),
                  already: num(totals!.skipped),
                  conflicts: num(totals!.conflicts),
                })
              : t("migrations.counts", {
                  completed,
                  total: run.steps.length,
                  imported: num(totals!.imported),
                  skipped: num(totals!.skipped),
                  failed: num(totals!.failed),
                })}
          </p>
          {run.record?.options?.sync && (
            <p id="sync-counts" className="muted">
              {t("migrations.sync.counts", {
                inserted: num(run.record.steps.reduce((a: number, s: any) => a + (s.collections || []).reduce((b: number, c: any) => b + (c.inserted || 0), 0), 0)),
                updated: num(run.record.steps.reduce((a: number, s: any) => a + (s.collections || []).reduce((b: number, c: any) => b + (c.updated || 0), 0), 0)),
                unchanged: num(totals!.skipped),
                gone: num(run.record.steps.reduce((a: number, s: any) => a + (s.collections || []).reduce((b: number, c: any) => b + (c.gone || 0), 0), 0)),
              })}
            </p>
          )}
          {run.record?.undoneBy && (
            <p id="undone-by" className="muted">
              {t("migrations.undone-by", { run: run.record.undoneBy })}
            </p>
          )}
          {run.record?.message && <p className="muted">{t("migrations.reason", { message: run.record.message })}</p>}
          {run.pace && run.status === "running" && !run.following && (
            <p id="run-pace" className="muted">
              {t("migrations.run-pace", {
                elapsed: clock(run.pace.elapsedMs),
                rate: num(Math.round(run.pace.perSecond)),
                eta: run.pace.etaMs == null ? "–" : clock(run.pace.etaMs),
              })}
            </p>
          )}
          {run.following && run.status === "running" && (
            <p id="following" className="alert" role="status" data-lag={run.following.lagMs}>
              {t("migrations.following", {
                lag: (run.following.lagMs / 1000).toFixed(1),
                applied: num(run.following.applied),
              })}
            </p>
          )}
          {run.stalled && run.status === "running" && (
            <p id="stalled" className="alert" role="status">
              {t("migrations.stalled", {
                step: run.stalled.step,
                label: run.stalled.collection ? `${run.stalled.label}, ${run.stalled.collection}` : run.stalled.label,
                since: new Date(run.stalled.since).toLocaleTimeString(),
              })}
            </p>
          )}
          <div className="actions">
            {run.status === "running" && !interrupted && (
              <button id="cancel" onClick={() => api(`/api/dev/migrations/${encodeURIComponent(run.id)}/cancel`, { method: "POST" }).catch(setError)}>
                {t(run.following ? "migrations.stop-following" : "migrations.cancel")}
              </button>
            )}
            {(["failed", "cancelled"].includes(run.status) || interrupted) && (
              <button
                id="resume"
                onClick={() =>
                  api(`/api/dev/migrations/${encodeURIComponent(run.id)}/resume`, { method: "POST" }).then(() => watch(run.id), setError)
                }
              >
                {t("migrations.resume")}
              </button>
            )}
            {undoable && (
              <button id="undo" onClick={() => planUndo(run.id, false)} disabled={busy}>
                {t("migrations.undo.button")}
              </button>
            )}
          </div>
          {undoPlan && undoPlan.runId === run.id && (
            <UndoPlanView
              plan={undoPlan.plan}
              force={undoPlan.force}
              busy={busy}
              onForce={(f) => planUndo(run.id, f)}
              onConfirm={confirmUndo}
              onBack={() => setUndoPlan(null)}
            />
          )}
          <table>
            <thead>
              <tr>
                {(isUndo
                  ? ["step", "what", "plugin", "status", "records", "removed", "restored", "conflicts"]
                  : ["step", "what", "plugin", "status", "records", "imported", "skipped", "failed"]
                ).map((h) => (
                  <th key={h}>{t("migrations.col." + h)}</th>
                ))}
              </tr>
            </thead>
            <tbody id="steps">
              {run.steps.map((s) => (
                <tr key={s.order} data-step={s.order} data-status={s.status} data-imported={s.imported}>
                  <td>{s.order}</td>
                  <td>{s.label}</td>
                  <td>{s.plugin}</td>
                  <td>{t("migrations.status." + s.status)}</td>
                  <td>
                    <progress max={s.records || 1} value={s.records ? Math.min(s.done, s.records) : s.status === "completed" ? 1 : 0} /> {num(s.done)} / {num(s.records)}
                    {s.status === "running" && s.pace && s.pace.perSecond > 0 && (
                      <small className="muted pace">
                        {" "}
                        {t("migrations.pace", { rate: num(Math.round(s.pace.perSecond)), eta: clock(s.pace.etaMs ?? 0) })}
                      </small>
                    )}
                  </td>
                  {isUndo ? (
                    <>
                      <td>{num(s.removed)}</td>
                      <td>{num(s.restored)}</td>
                      <td>{num(s.conflicts)}</td>
                    </>
                  ) : (
                    <>
                      <td>{num(s.imported)}</td>
                      <td>{num(s.skipped)}</td>
                      <td>{num(s.failed)}</td>
                    </>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
          {run.record && FINAL.includes(run.record.status) && <Result rec={run.record} />}
        </section>
      )}

      <section>
        <h3>{t("migrations.history")}</h3>
        <table>
          <thead>
            <tr>
              {["run", "mode", "status", "imported", "started"].map((h) => (
                <th key={h}>{t("migrations.col." + h)}</th>
              ))}
              <th />
            </tr>
          </thead>
          <tbody id="history">
            {history.map((r) => {
              // The run on screen: its row says what its header says.
              const live = run && run.id === r.runId && totals ? { status: shownStatus!, imported: totals.imported } : r;
              return (
                <tr key={r.runId} data-run={r.runId} data-status={live.status} data-imported={live.imported}>
                  <td>{r.runId}</td>
                  <td>{t(`migrations.${r.mode}`)}</td>
                  <td>{t("migrations.status." + live.status)}</td>
                  <td>{num(live.imported)}</td>
                  <td>{r.startedAt ? new Date(r.startedAt).toLocaleString() : ""}</td>
                  <td>
                    <button className="link" onClick={() => watch(r.runId)}>{t("migrations.open")}</button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </section>
    </main>
  );
}

/** The plan of an undo, with the force switch and Confirm. */
function UndoPlanView(props: {
  plan: any;
  force: boolean;
  busy: boolean;
  onForce: (force: boolean) => void;
  onConfirm: () => void;
  onBack: () => void;
}) {
  const { plan, force, busy } = props;
  return (
    <section id="undo-plan">
      <h4>
        {t("migrations.undo.plan")} <small className="muted">{t("migrations.plan.confirm-note")}</small>
      </h4>
      <table>
        <thead>
          <tr>
            {["what", "plugin", "entries", "remove", "restore", "already", "conflicts"].map((h) => (
              <th key={h}>{t("migrations.col." + h)}</th>
            ))}
          </tr>
        </thead>
        <tbody id="undo-plan-body">
          {plan.collections.map((c: any) => (
            <tr key={c.name} data-collection={c.name} data-remove={c.toRemove} data-restore={c.toRestore} data-conflicts={c.conflicts}>
              <td>{c.name}</td>
              <td>{c.plugin}</td>
              <td>{num(c.entries)}</td>
              <td>{num(c.toRemove)}</td>
              <td>{num(c.toRestore)}</td>
              <td>{num(c.alreadyUndone)}</td>
              <td>{num(c.conflicts)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {plan.conflictCount > 0 && (
        <>
          <p className="alert" role="status" id="undo-conflicts-note">
            {t(force ? "migrations.undo.forced" : "migrations.undo.kept", { count: num(plan.conflictCount) })}
          </p>
          <ul id="undo-conflicts">
            {plan.conflicts.slice(0, 50).map((e: any, i: number) => (
              <li key={i}>
                {e.collection} <code>{e.sourceId}</code>: {e.reason}
              </li>
            ))}
          </ul>
          <label className="check">
            <input id="undo-force" type="checkbox" checked={force} onChange={(e) => props.onForce(e.currentTarget.checked)} disabled={busy} />{" "}
            {t("migrations.undo.force")}
          </label>
        </>
      )}
      <div className="actions">
        <button id="confirm-undo" onClick={props.onConfirm} disabled={busy}>
          {t("migrations.undo.confirm")}
        </button>
        <button className="link" onClick={props.onBack}>
          {t("migrations.back")}
        </button>
      </div>
    </section>
  );
}

function Result({ rec }: { rec: any }) {
  const v = rec.verification;
  let text = "";
  if (v && v.undo) {
    const checked = v.collections.reduce((a: number, c: any) => a + c.source, 0);
    const still = v.collections.reduce((a: number, c: any) => a + c.missing, 0);
    text = v.ok ? t("migrations.undo.verified", { checked: num(checked) }) : t("migrations.undo.unverified", { still: num(still), checked: num(checked) });
  } else if (v) {
    const checked = v.collections.reduce((a: number, c: any) => a + c.source, 0);
    const matching = v.collections.reduce((a: number, c: any) => a + c.matching, 0);
    text = v.ok
      ? t("migrations.verified", { matching: num(matching), checked: num(checked) })
      : t("migrations.unverified", {
          what: v.collections
            .filter((c: any) => c.missing > 0 || !c.ok)
            .slice(0, 5)
            .map((c: any) =>
              c.missing > 0
                ? `${c.name}: ${num(c.missing)} / ${num(c.source)} ${t("migrations.missing")}${(c.firstMissing || []).length ? ` (${c.firstMissing.slice(0, 3).join(", ")})` : ""}`
                : `${c.name}: ${num(c.differing)} / ${num(c.source)} ${t("migrations.differing")}`,
            )
            .join("; "),
        });
  } else if (rec.status !== "completed") {
    text = t("migrations.not-verified");
  }
  return (
    <section id="result">
      <h4>{t("migrations.result")}</h4>
      <p id="verification">{text}</p>
      <ul id="errors">
        {(rec.errors || []).slice(0, 50).map((e: any, i: number) => (
          <li key={i}>
            {e.collection} {e.sourceId}: {e.reason}
          </li>
        ))}
      </ul>
      {rec.mode === "undo" && (rec.skips || []).length > 0 && (
        <>
          <h4>{t("migrations.undo.kept-title", { count: num(rec.skipCount) })}</h4>
          <ul id="kept">
            {rec.skips.slice(0, 50).map((e: any, i: number) => (
              <li key={i}>
                {e.collection} <code>{e.sourceId}</code>: {e.reason}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
