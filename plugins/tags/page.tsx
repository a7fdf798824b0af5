import { useState } from "react";
import { api } from "@dashboard/api";
import { t } from "@dashboard/i18n";
import { ListAction } from "@dashboard/reducer";
import { Frame } from "@dashboard/realtime";
import { useRealtimeData } from "@dashboard/useRealtimeData";

interface Tag {
  name: string;
  content: string;
  authorId: string;
  uses: number;
}

/** What the tags events do to the list. */
export function toAction(f: Frame): ListAction<Tag> | null {
  switch (f.event) {
    case "tags:tag_created":
    case "tags:tag_updated":
      return { type: "upsert", item: f.data.tag };
    case "tags:tag_deleted":
      return { type: "remove", key: f.data.name };
    default:
      return null;
  }
}

/** Tags: search, create, edit, delete; live. */
export function TagsPage({ guild }: { guild: string }) {
  const [q, setQ] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [content, setContent] = useState("");
  const base = `/api/guilds/${guild}/tags/items`;
  const { items, loading, hasMore, more } = useRealtimeData<Tag>(
    guild,
    (after) => api(`${base}?limit=100&q=${encodeURIComponent(q)}${after !== null ? `&after=${encodeURIComponent(after)}` : ""}`),
    (t) => t.name,
    toAction,
    [q],
  );
  const run = async (p: Promise<unknown>) => {
    setError(null);
    try {
      await p;
    } catch (e: any) {
      setError(e.message);
    }
  };
  return (
    <section data-testid="tags">
      <h3>{t("tags.title")}</h3>
      <input type="search" placeholder={t("tags.search")} value={q} onChange={(e) => setQ(e.target.value)} />
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          run(api(base, { method: "POST", body: { name, content } }).then(() => (setName(""), setContent(""))));
        }}
      >
        <input name="tag-name" placeholder={t("tags.name")} value={name} onChange={(e) => setName(e.target.value)} />
        <input name="tag-content" placeholder={t("tags.content")} value={content} onChange={(e) => setContent(e.target.value)} />
        <button type="submit">{t("tags.create")}</button>
      </form>
      {error && <p className="error" role="alert">{error}</p>}
      {loading && <p>{t("loading")}</p>}
      <table>
        <thead>
          <tr>
            <th>{t("tags.name")}</th>
            <th>{t("tags.content")}</th>
            <th>{t("tags.uses")}</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {items
            .filter((tag) => tag.name.includes(q.toLowerCase().trim()))
            .map((tag) => (
              <tr key={tag.name} data-tag={tag.name}>
                <td>{tag.name}</td>
                <td className="content">{tag.content}</td>
                <td>{tag.uses}</td>
                <td>
                  <button
                    onClick={() => {
                      const next = prompt(t("tags.edit"), tag.content);
                      if (next !== null) run(api(`${base}/${tag.name}`, { method: "PUT", body: { content: next } }));
                    }}
                  >
                    {t("tags.edit")}
                  </button>
                  <button onClick={() => run(api(`${base}/${tag.name}`, { method: "DELETE" }))}>{t("tags.delete")}</button>
                </td>
              </tr>
            ))}
        </tbody>
      </table>
      {hasMore && <button onClick={more} data-testid="more">{t("list.more")}</button>}
    </section>
  );
}

export default TagsPage;
