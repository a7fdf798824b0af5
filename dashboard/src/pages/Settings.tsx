import { useEffect, useState } from "react";
import { api, Settings, Field } from "../api";
import { t } from "../i18n";
import { useGuildEvents } from "../useRealtimeData";

interface Lookup {
  discord: boolean;
  channels: { id: string; name: string; kind: string }[];
  roles: { id: string; name: string; color: string | null }[];
}

const lookups = new Map<string, Promise<Lookup>>();

/** The server's channels and roles for the pickers, asked once per page load. */
function lookup(guild: string): Promise<Lookup> {
  let l = lookups.get(guild);
  if (!l) {
    l = api<Lookup>(`/api/guilds/${guild}/discord`).catch(() => ({ discord: false, channels: [], roles: [] }));
    lookups.set(guild, l);
  }
  return l;
}

const KINDS: Record<string, string[]> = {
  channel: ["text", "announcement", "forum"],
  voice_channel: ["voice", "stage"],
};

/** A picker for a channel or role setting (a text box when Discord is off). */
function Picker({ f, value, onChange, server }: { f: Field; value: string | null; onChange: (v: string | null) => void; server: Lookup | null }) {
  if (!server?.discord) {
    return (
      <input
        name={f.name}
        inputMode="numeric"
        placeholder={`${f.type === "role" ? "role" : "channel"} id`}
        value={value ?? ""}
        onChange={(e) => onChange(e.target.value === "" ? null : e.target.value)}
      />
    );
  }
  const options =
    f.type === "role"
      ? server.roles.map((r) => ({ id: r.id, label: `@${r.name}` }))
      : server.channels
          .filter((c) => KINDS[f.type].includes(c.kind))
          .map((c) => ({ id: c.id, label: c.kind === "voice" || c.kind === "stage" ? `🔊 ${c.name}` : `#${c.name}` }));
  const known = value === null || options.some((o) => o.id === value);
  return (
    <select name={f.name} value={value ?? ""} onChange={(e) => onChange(e.target.value || null)}>
      <option value="">—</option>
      {!known && <option value={value!}>{t("settings.unknown", { id: value! })}</option>}
      {options.map((o) => (
        <option key={o.id} value={o.id}>
          {o.label}
        </option>
      ))}
    </select>
  );
}

/** A plugin's settings, rendered from its schema; changes by others appear as they happen. */
export function SettingsForm({ guild, plugin }: { guild: string; plugin: string }) {
  const [server, setServer] = useState<Lookup | null>(null);
  useEffect(() => {
    lookup(guild).then(setServer);
  }, [guild]);
  const path = `/api/guilds/${guild}/${plugin}/config`;
  const [settings, setSettings] = useState<Settings | null>(null);
  const [draft, setDraft] = useState<Record<string, any>>({});
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = () => api<Settings>(path).then((s) => (setSettings(s), setDraft({})), (e) => setError(e.message));
  useEffect(() => {
    load();
  }, [path]);
  useGuildEvents(
    guild,
    (f) => {
      if (f.event !== `${plugin}:config_updated`) return;
      setSettings((s) => (s ? { ...s, values: { ...s.values, ...f.data.values } } : s));
      setMessage(t("settings.changed", { by: f.data.by }));
    },
    load,
  );
  if (!settings) return error ? <p className="error">{error}</p> : <p>{t("loading")}</p>;
  const value = (f: Field) => (f.name in draft ? draft[f.name] : settings.values[f.name]);
  const set = (name: string, v: any) => setDraft((d) => ({ ...d, [name]: v }));
  return (
    <form
      className="settings"
      data-testid="settings"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(null);
        try {
          const s = await api<Settings>(path, { method: "PUT", body: draft });
          setSettings(s);
          setDraft({});
          setMessage(t("settings.saved"));
        } catch (err: any) {
          setError(err.message);
        }
      }}
    >
      {settings.fields.map((f) => (
        <label key={f.name}>
          <span>{f.label}</span>
          {f.type === "bool" ? (
            <input type="checkbox" name={f.name} checked={!!value(f)} onChange={(e) => set(f.name, e.target.checked)} />
          ) : f.type === "choice" ? (
            <select name={f.name} value={value(f) ?? ""} onChange={(e) => set(f.name, e.target.value || null)}>
              <option value="">—</option>
              {f.choices!.map((c) => (
                <option key={c}>{c}</option>
              ))}
            </select>
          ) : f.type === "secret" ? (
            <span className="secret">
              <em>{settings.values[f.name]?.set ? t("settings.secret.set") : t("settings.secret.unset")}</em>
              <input
                type="password"
                name={f.name}
                autoComplete="off"
                maxLength={f.max}
                placeholder={t("settings.secret.placeholder")}
                value={draft[f.name] ?? ""}
                onChange={(e) => set(f.name, e.target.value)}
              />
            </span>
          ) : f.type === "integer" ? (
            <input
              type="number"
              name={f.name}
              min={f.min}
              max={f.max}
              value={value(f) ?? ""}
              onChange={(e) => set(f.name, e.target.value === "" ? null : Number(e.target.value))}
            />
          ) : f.type === "channel" || f.type === "voice_channel" || f.type === "role" ? (
            <Picker f={f} value={value(f) ?? null} onChange={(v) => set(f.name, v)} server={server} />
          ) : (
            <input
              name={f.name}
              maxLength={f.max}
              value={value(f) ?? ""}
              onChange={(e) => set(f.name, e.target.value === "" ? null : e.target.value)}
            />
          )}
        </label>
      ))}
      <button type="submit" disabled={Object.keys(draft).length === 0}>
        {t("settings.save")}
      </button>
      {message && <p className="muted" data-testid="settings-message">{message}</p>}
      {error && <p className="error" role="alert">{error}</p>}
    </form>
  );
}
