import { useEffect, useState } from "react";
import { api, ApiError, GuildPage, GuildSummary, Me, setCsrf } from "./api";
import { pickLocale, setLocale, t } from "./i18n";
import { RealtimeClient, Status, gatewayUrl } from "./realtime";
import { Realtime } from "./useRealtimeData";
import { SettingsForm } from "./pages/Settings";
import { Migrations } from "./pages/Migrations";
import { pages as pluginPages } from "./plugins";

function go(path: string) {
  history.pushState(null, "", path);
  dispatchEvent(new PopStateEvent("popstate"));
}

function Link(props: { to: string; children: React.ReactNode; className?: string }) {
  return (
    <a
      href={props.to}
      className={props.className}
      onClick={(e) => {
        e.preventDefault();
        go(props.to);
      }}
    >
      {props.children}
    </a>
  );
}

function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const on = () => setPath(location.pathname);
    addEventListener("popstate", on);
    return () => removeEventListener("popstate", on);
  }, []);
  return path;
}

function LiveIndicator({ client }: { client: RealtimeClient }) {
  const [status, setStatus] = useState<Status>(client.status);
  useEffect(() => client.onStatus(setStatus), [client]);
  return (
    <span className={"pill " + (status === "live" ? "ok" : "warn")} data-testid="live" data-status={status}>
      {t("status." + status)}
    </span>
  );
}

function Login() {
  const error = new URLSearchParams(location.search).get("error");
  const [available, setAvailable] = useState(true);
  useEffect(() => {
    api<{ login: boolean }>("/api/auth/config").then((c) => setAvailable(c.login), () => setAvailable(false));
  }, []);
  return (
    <main className="login">
      <h1>{t("login.title")}</h1>
      {error && <p className="error" role="alert">{t("login.error." + error)}</p>}
      {available ? (
        <a className="button discord" href="/api/auth/login?next=/">
          {t("login.button")}
        </a>
      ) : (
        <p>{t("login.unavailable")}</p>
      )}
    </main>
  );
}

function Picker() {
  const [guilds, setGuilds] = useState<GuildSummary[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<GuildSummary[]>("/api/guilds").then(setGuilds, (e) => setError(e.message));
  }, []);
  if (error) return <p className="error">{t("error", { message: error })}</p>;
  if (!guilds) return <p>{t("loading")}</p>;
  return (
    <main>
      <h2>{t("picker.title")}</h2>
      {guilds.length === 0 && <p data-testid="no-guilds">{t("picker.empty")}</p>}
      <ul className="guilds" data-testid="guilds">
        {guilds.map((g) => (
          <li key={g.id} data-guild={g.id}>
            <Link to={`/guilds/${g.id}`}>
              <b>{g.name ?? g.id}</b>
              <small>{g.id}</small>
            </Link>
          </li>
        ))}
      </ul>
    </main>
  );
}

function Guild({ id, plugin }: { id: string; plugin?: string }) {
  const [page, setPage] = useState<GuildPage | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    setPage(null);
    setError(null);
    api<GuildPage>(`/api/guilds/${id}`).then(setPage, setError);
  }, [id]);
  if (error?.status === 403)
    return (
      <main data-testid="no-access">
        <h2>{t("noaccess.title")}</h2>
        <p>{t("noaccess.text")}</p>
        <Link to="/">{t("guild.back")}</Link>
      </main>
    );
  if (error) return <p className="error">{t("error", { message: error.message })}</p>;
  if (!page) return <p>{t("loading")}</p>;
  const pages = page.plugins.filter((p) => p.settings || p.name in pluginPages);
  const current = plugin ?? pages[0]?.name;
  const info = page.plugins.find((p) => p.name === current);
  return (
    <div className="guild">
      <nav>
        <Link to="/">← {t("guild.back")}</Link>
        <ul>
          {pages.map((p) => (
            <li key={p.name} className={p.name === current ? "current" : ""}>
              <Link to={`/guilds/${id}/${p.name}`}>{p.name}</Link>
            </li>
          ))}
        </ul>
      </nav>
      <main>
        <h2>{current}</h2>
        {info && <p className="muted">{info.description}</p>}
        {info?.settings && <SettingsForm guild={id} plugin={info.name} key={`settings:${id}:${info.name}`} />}
        {current && pluginPages[current] && <PluginPage page={pluginPages[current]} guild={id} key={`page:${id}:${current}`} />}
      </main>
    </div>
  );
}

function PluginPage({ page: Page, guild }: { page: React.ComponentType<{ guild: string }>; guild: string }) {
  return <Page guild={guild} />;
}

export function App() {
  const path = usePath();
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [client, setClient] = useState<RealtimeClient | null>(null);
  useEffect(() => {
    api<Me>("/api/auth/me").then(
      (m) => {
        setCsrf(m.csrfToken);
        // The user's Discord language first, then the browser's.
        setLocale(pickLocale([...(m.locale ? [m.locale] : []), ...navigator.languages]));
        document.documentElement.lang = m.locale ?? document.documentElement.lang;
        setMe(m);
      },
      () => setMe(null),
    );
  }, []);
  useEffect(() => {
    if (!me) return;
    const c = new RealtimeClient({ url: gatewayUrl(location) });
    setClient(c);
    // Signed out here or in another tab: the login page.
    const off = c.onStatus((s) => s === "signed-out" && setMe(null));
    return () => (off(), c.stop());
  }, [me?.userId]);
  useEffect(() => {
    const out = () => setMe(null);
    addEventListener("heimdall:signed-out", out);
    return () => removeEventListener("heimdall:signed-out", out);
  }, []);
  if (me === undefined) return <p>{t("loading")}</p>;
  if (me === null || path === "/login") return <Login />;
  const m = path.match(/^\/guilds\/(\d+)(?:\/([\w-]+))?/);
  return (
    <Realtime.Provider value={client}>
      <header>
        <h1>
          <Link to="/">{t("app.title")}</Link>
        </h1>
        {client && <LiveIndicator client={client} />}
        <span className="spacer" />
        {me.owner && <Link to="/migrations">{t("owners.migrations")}</Link>}
        <span data-testid="me">{me.name ?? me.userId}</span>
        <button
          onClick={async () => {
            await api("/api/auth/logout", { method: "POST" });
            location.href = "/login";
          }}
        >
          {t("logout")}
        </button>
      </header>
      {path === "/migrations" ? <Migrations owner={me.owner} /> : m ? <Guild id={m[1]} plugin={m[2]} /> : <Picker />}
    </Realtime.Provider>
  );
}
