import { useEffect, useState } from "react";
import { api } from "@dashboard/api";
import { t } from "@dashboard/i18n";
import { useGuildEvents } from "@dashboard/useRealtimeData";

interface Entry {
  targetType: "user" | "role";
  targetId: string;
}

interface Lookup {
  discord: boolean;
  roles: { id: string; name: string }[];
}

/** Who may open this server's dashboard; those with Manage Server change it. Live. */
export function AccessPage({ guild }: { guild: string }) {
  const base = `/api/guilds/${guild}/dashboard/access`;
  const [entries, setEntries] = useState<Entry[]>([]);
  const [mayManage, setMayManage] = useState(false);
  const [roles, setRoles] = useState<Lookup["roles"]>([]);
  const [kind, setKind] = useState<"user" | "role">("role");
  const [target, setTarget] = useState("");
  const [error, setError] = useState<string | null>(null);
  const load = () =>
    api<{ entries: Entry[]; mayManage: boolean }>(base).then((r) => (setEntries(r.entries), setMayManage(r.mayManage)), (e) => setError(e.message));
  useEffect(() => {
    load();
    api<Lookup>(`/api/guilds/${guild}/discord`).then((l) => setRoles(l.roles), () => {});
  }, [guild]);
  useGuildEvents(
    guild,
    (f) => f.event === "dashboard:access_updated" && setEntries(f.data.entries),
    load,
  );
  const name = (e: Entry) =>
    e.targetType === "role" ? `@${roles.find((r) => r.id === e.targetId)?.name ?? e.targetId}` : e.targetId;
  const run = (p: Promise<unknown>) => {
    setError(null);
    p.catch((e) => setError(e.message));
  };
  return (
    <section data-testid="access">
      <h3>{t("access.title")}</h3>
      <p className="muted">{t("access.about")}</p>
      <table>
        <thead>
          <tr>
            <th>{t("access.who")}</th>
            <th>{t("access.kind")}</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {entries.map((e) => (
            <tr key={e.targetType + e.targetId} data-entry={e.targetId}>
              <td>{name(e)}</td>
              <td>{t("access.kind." + e.targetType)}</td>
              <td>
                {mayManage && (
                  <button onClick={() => run(api(`${base}/${e.targetType}/${e.targetId}`, { method: "DELETE" }))}>
                    {t("access.remove")}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {mayManage ? (
        <form
          className="row"
          onSubmit={(ev) => {
            ev.preventDefault();
            run(api(base, { method: "POST", body: { targetType: kind, targetId: target } }).then(() => setTarget("")));
          }}
        >
          <select value={kind} onChange={(e) => (setKind(e.target.value as "user" | "role"), setTarget(""))} aria-label={t("access.kind")}>
            <option value="role">{t("access.kind.role")}</option>
            <option value="user">{t("access.kind.user")}</option>
          </select>
          {kind === "role" && roles.length > 0 ? (
            <select name="target" value={target} onChange={(e) => setTarget(e.target.value)}>
              <option value="">—</option>
              {roles.map((r) => (
                <option key={r.id} value={r.id}>
                  @{r.name}
                </option>
              ))}
            </select>
          ) : (
            <input name="target" inputMode="numeric" placeholder={t("access.id." + kind)} value={target} onChange={(e) => setTarget(e.target.value.trim())} />
          )}
          <button type="submit" disabled={!target}>
            {t("access.add")}
          </button>
        </form>
      ) : (
        <p className="muted">{t("access.manage-server")}</p>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}

export default AccessPage;
