// The app's strings in English and German, chosen by the browser's language.
import en from "./locales/en.json";
import de from "./locales/de.json";
import { pluginStrings } from "./plugins";

// The app's strings, and each plugin's for its own page.
const dictionaries: Record<string, Record<string, string>> = {
  en: { ...pluginStrings("en"), ...en },
  de: { ...pluginStrings("de"), ...de },
};

/** `de-AT` → `de`; anything unknown → `en`. */
export function pickLocale(languages: readonly string[]): "en" | "de" {
  for (const l of languages) {
    const base = l.toLowerCase().split("-")[0];
    if (base === "de" || base === "en") return base;
  }
  return "en";
}

let locale: "en" | "de" = typeof navigator === "undefined" ? "en" : pickLocale(navigator.languages ?? [navigator.language]);

export function setLocale(l: "en" | "de") {
  locale = l;
}

export function currentLocale() {
  return locale;
}

export function t(key: string, vars: Record<string, string | number> = {}): string {
  const text = dictionaries[locale][key] ?? dictionaries.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, v) => String(vars[v] ?? ""));
}
