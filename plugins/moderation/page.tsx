import { useState } from "react";
import { api } from "@dashboard/api";
import { t } from "@dashboard/i18n";
import { ListAction } from "@dashboard/reducer";
import { Frame } from "@dashboard/realtime";
import { useRealtimeData } from "@dashboard/useRealtimeData";

interface Case {
  caseNumber: number;
  userId: string;
  moderatorId: string;
  type: string;
  reason: string | null;
  pardoned: boolean;
}

const TYPES = ["warn", "mute", "kick", "ban", "timeout"];

/** What the infraction events do to the list: a new case comes first. */
export function toAction(f: Frame): ListAction<Case> | null {
  switch (f.event) {
    case "moderation:infraction_created":
      return { type: "upsert", item: f.data.infraction, prepend: true };
    case "moderation:infraction_updated":
      return { type: "upsert", item: f.data.infraction };
    default:
      return null;
  }
}

/** Infractions: by member or type, newest first; pardon; live. */
export function InfractionsPage({ guild }: { guild: string }) {
  const [user, setUser] = useState("");
  const [type, setType] = useState("");
  const [caseNo, setCaseNo] = useState("");
  const [error, setError] = useState<string | null>(null);
  const base = `/api/guilds/${guild}/moderation/infractions`;
  const { items, loading, hasMore, more } = useRealtimeData<Case>(
    guild,
    (before) =>
      api(`${base}?limit=100&user=${user}&type=${type}${caseNo ? `&case=${caseNo}` : ""}${before !== null ? `&before=${before}` : ""}`),
    (c) => String(c.caseNumber),
    toAction,
    [user, type, caseNo],
  );
  const shown = items.filter(
    (c) => (!user || c.userId === user) && (!type || c.type === type) && (!caseNo || String(c.caseNumber) === caseNo),
  );
  return (
    <section data-testid="infractions">
      <h3>{t("infractions.title")}</h3>
      <div className="row">
        <input placeholder={t("infractions.member")} value={user} inputMode="numeric" onChange={(e) => setUser(e.target.value.trim())} />
        <input
          placeholder={t("infractions.case")}
          value={caseNo}
          inputMode="numeric"
          name="case"
          onChange={(e) => setCaseNo(e.target.value.replace(/\D/g, ""))}
        />
        <select value={type} onChange={(e) => setType(e.target.value)} aria-label={t("infractions.type")}>
          <option value="">{t("list.all")}</option>
          {TYPES.map((k) => (
            <option key={k}>{k}</option>
          ))}
        </select>
      </div>
      {error && <p className="error" role="alert">{error}</p>}
      {loading && <p>{t("loading")}</p>}
      <table>
        <thead>
          <tr>
            <th>{t("infractions.case")}</th>
            <th>{t("infractions.member")}</th>
            <th>{t("infractions.type")}</th>
            <th>{t("infractions.reason")}</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {shown.map((c) => (
            <tr key={c.caseNumber} data-case={c.caseNumber} className={c.pardoned ? "pardoned" : ""}>
              <td>#{c.caseNumber}</td>
              <td>{c.userId}</td>
              <td>{c.type}</td>
              <td>{c.reason}</td>
              <td>
                {c.pardoned ? (
                  <em>{t("infractions.pardoned")}</em>
                ) : (
                  <button
                    onClick={() =>
                      api(`${base}/${c.caseNumber}/pardon`, { method: "POST", body: {} }).catch((e) => setError(e.message))
                    }
                  >
                    {t("infractions.pardon")}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {hasMore && <button onClick={more} data-testid="more">{t("list.more")}</button>}
    </section>
  );
}

export default InfractionsPage;
