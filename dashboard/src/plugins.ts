// The plugins' own dashboard pages and strings, found where each plugin keeps them:
// `plugins/<name>/page.tsx` (its default export is the page) and
// `plugins/<name>/locales/dashboard.<en|de>.json`. The app names no plugin.

import type { ComponentType } from "react";

type Page = ComponentType<{ guild: string }>;

const modules = import.meta.glob<{ default: Page }>("../../plugins/*/page.tsx", { eager: true });

/** The plugin's name from its folder (`role_buttons` → `role-buttons`). */
function pluginOf(path: string): string {
  const parts = path.split("/");
  return parts[parts.length - 2].replace(/_/g, "-");
}

/** Each plugin's data page, by plugin name. */
export const pages: Record<string, Page> = Object.fromEntries(
  Object.entries(modules).map(([path, m]) => [pluginOf(path), m.default]),
);

const strings = import.meta.glob<Record<string, string>>("../../plugins/*/locales/dashboard.*.json", {
  eager: true,
  import: "default",
});

/** The plugins' strings for `locale` (`en`, `de`), merged. */
export function pluginStrings(locale: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [path, dict] of Object.entries(strings)) {
    if (path.endsWith(`/dashboard.${locale}.json`)) Object.assign(out, dict);
  }
  return out;
}
