// The bot's HTTP API, from the page's own origin, with the session cookie. Requests that
// change something carry the session's CSRF token.

import { currentLocale } from "./i18n";

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

let csrf: string | null = null;

/** Remembers the session's CSRF token (from `GET /api/auth/me`). */
export function setCsrf(token: string | null) {
  csrf = token;
}

export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const method = init.method ?? "GET";
  const headers: Record<string, string> = { "accept-language": currentLocale() };
  if (init.body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && csrf) headers["x-csrf-token"] = csrf;
  const r = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  if (r.status === 204) return undefined as T;
  const body = await r.json().catch(() => null);
  if (r.status === 401 && path !== "/api/auth/me") {
    // The session ended (logged out elsewhere, expired): back to the login page.
    dispatchEvent(new Event("heimdall:signed-out"));
  }
  if (!r.ok) {
    throw new ApiError(r.status, body?.code ?? "http_" + r.status, body?.message ?? r.statusText);
  }
  return body as T;
}

export interface Me {
  userId: string;
  name: string | null;
  avatar: string | null;
  owner: boolean;
  locale: string | null;
  csrfToken: string | null;
}

export interface GuildSummary {
  id: string;
  name: string | null;
  icon: string | null;
}

export interface GuildPage {
  id: string;
  plugins: { name: string; description: string; settings: boolean }[];
}

export interface Field {
  name: string;
  label: string;
  type: "text" | "integer" | "bool" | "choice" | "channel" | "voice_channel" | "role" | "secret";
  max?: number;
  min?: number;
  choices?: string[];
}

export interface Settings {
  plugin: string;
  fields: Field[];
  values: Record<string, any>;
}
