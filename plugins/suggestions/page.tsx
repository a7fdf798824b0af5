import { useState } from "react";
import { api } from "@dashboard/api";
import { t } from "@dashboard/i18n";
import { ListAction } from "@dashboard/reducer";
import { Frame } from "@dashboard/realtime";
import { useRealtimeData } from "@dashboard/useRealtimeData";

interface Suggestion {
  number: number;
  authorId: string;
  content: string;
  status: string;
  upvotes: number;
  downvotes: number;
  note: string | null;
}

const STATUSES = ["pending", "approved", "denied", "implemented"];

/** What a decision does to the list. */
export function toAction(f: Frame): ListAction<Suggestion> | null {
  return f.event === "suggestions:updated" ? { type: "upsert", item: f.data.suggestion } : null;
}

/** Suggestions with their votes; staff set the status; live. */
export function SuggestionsPage({ guild }: { guild: string }) {
  const [status, setStatus] = useState("");
  const [error, setError] = useState<string | null>(null);
  const base = `/api/guilds/${guild}/suggestions/items`;
  const { items, loading, hasMore, more } = useRealtimeData<Suggestion>(
    guild,
    (before) => api(`${base}?limit=100&status=${status}${before !== null ? `&before=${before}` : ""}`),
    (s) => String(s.number),
    toAction,
    [status],
  );
  return (
    <section data-testid="suggestions">
      <h3>{t("suggestions.title")}</h3>
      <div className="row">
        <select value={status} onChange={(e) => setStatus(e.target.value)} aria-label={t("suggestions.status")}>
          <option value="">{t("list.all")}</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>{t("suggestions.status." + s)}</option>
          ))}
        </select>
      </div>
      {error && <p className="error" role="alert">{error}</p>}
      {loading && <p>{t("loading")}</p>}
      <table>
        <thead>
          <tr>
            <th>#</th>
            <th>{t("suggestions.content")}</th>
            <th>{t("suggestions.votes")}</th>
            <th>{t("suggestions.status")}</th>
          </tr>
        </thead>
        <tbody>
          {items
            .filter((s) => !status || s.status === status)
            .map((s) => (
              <tr key={s.number} data-suggestion={s.number}>
                <td>{s.number}</td>
                <td className="content">{s.content}</td>
                <td>
                  <span className="up">▲ {s.upvotes}</span> <span className="down">▼ {s.downvotes}</span>
                </td>
                <td>
                  <select
                    value={s.status}
                    aria-label={t("suggestions.status")}
                    onChange={(e) =>
                      api(`${base}/${s.number}/status`, { method: "PUT", body: { status: e.target.value } }).catch((err) =>
                        setError(err.message),
                      )
                    }
                  >
                    {STATUSES.map((k) => (
                      <option key={k} value={k}>{t("suggestions.status." + k)}</option>
                    ))}
                  </select>
                </td>
              </tr>
            ))}
        </tbody>
      </table>
      {hasMore && <button onClick={more} data-testid="more">{t("list.more")}</button>}
    </section>
  );
}

export default SuggestionsPage;
