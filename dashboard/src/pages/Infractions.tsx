import { useState } from "react";
import { api } from "../api";
import { t } from "../i18n";
import { eventToAction } from "../reducer";
import { useRealtimeData } from "../useRealtimeData";

interface Case {
  caseNumber: number;
  userId: string;
  moderatorId: string;
  type: string;
  reason: string | null;
  pardoned: boolean;
}

const TYPES = ["warn", "mute", "kick", "ban", "timeout"];

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
    (f) => (f.event.startsWith("moderation:infraction") ? eventToAction(f.event, f.data) : null),
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
          <option value="">{t("infractions.all")}</option>
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
      {hasMore && <button onClick={more} data-testid="more">{t("tags.more")}</button>}
    </section>
  );
}
