import { useEffect, useState } from "react";
import { api } from "@dashboard/api";
import { t } from "@dashboard/i18n";

import { useRealtimeData } from "@dashboard/useRealtimeData";

interface Conversation {
  ticketNumber: number;
  userId: string;
  status: string;
  claimedBy: string | null;
}

interface Message {
  id: string;
  authorId: string;
  isStaff: boolean;
  content: string;
  createdAt: number;
}

/** Modmail: conversations, and one conversation's messages with a reply box; live. */
export function ModmailPage({ guild }: { guild: string }) {
  const [open, setOpen] = useState<number | null>(null);
  const { items, hasMore, more } = useRealtimeData<Conversation>(
    guild,
    (before) => api(`/api/guilds/${guild}/modmail/conversations?limit=100${before !== null ? `&before=${before}` : ""}`),
    (c) => String(c.ticketNumber),
    () => null,
  );
  return (
    <section data-testid="modmail" className="modmail">
      <h3>{t("modmail.title")}</h3>
      <div className="split">
        <ul className="conversations">
          {items.map((c) => (
            <li key={c.ticketNumber} className={c.ticketNumber === open ? "current" : ""}>
              <button className="plain" data-ticket={c.ticketNumber} onClick={() => setOpen(c.ticketNumber)}>
                #{c.ticketNumber} · {c.userId} <em>{t("modmail.status." + c.status)}</em>
              </button>
            </li>
          ))}
          {hasMore && (
            <li>
              <button onClick={more}>{t("list.more")}</button>
            </li>
          )}
        </ul>
        {open !== null && <Conversation guild={guild} ticket={open} key={open} />}
      </div>
    </section>
  );
}

async function allMessages(base: string): Promise<{ items: Message[]; next: null }> {
  const out: Message[] = [];
  let after: string | null = null;
  for (let i = 0; i < 50; i++) {
    const page: { items: Message[]; next: string | null } = await api(`${base}?limit=100${after ? `&after=${after}` : ""}`);
    out.push(...page.items);
    if (!page.next) break;
    after = page.next;
  }
  return { items: out, next: null };
}

function Conversation({ guild, ticket }: { guild: string; ticket: number }) {
  const base = `/api/guilds/${guild}/modmail/conversations/${ticket}/messages`;
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);
  const { items } = useRealtimeData<Message>(
    guild,
    () => allMessages(base),
    (m) => m.id,
    (f) => (f.event === "modmail:message_created" && f.data.ticketNumber === ticket ? { type: "upsert", item: f.data.message } : null),
  );
  useEffect(() => {
    document.querySelector(".messages li:last-child")?.scrollIntoView();
  }, [items.length]);
  return (
    <div className="conversation">
      <ul className="messages">
        {items.map((m) => (
          <li key={m.id} className={m.isStaff ? "staff" : "member"} data-message={m.id}>
            <small>{m.authorId}</small>
            <p>{m.content}</p>
          </li>
        ))}
      </ul>
      <form
        className="row"
        onSubmit={async (e) => {
          e.preventDefault();
          setError(null);
          try {
            await api(base, { method: "POST", body: { content: text } });
            setText("");
          } catch (err: any) {
            setError(err.message);
          }
        }}
      >
        <input name="reply" placeholder={t("modmail.reply")} value={text} maxLength={2000} onChange={(e) => setText(e.target.value)} />
        <button type="submit" disabled={!text.trim()}>{t("modmail.send")}</button>
      </form>
      {error && <p className="error" role="alert">{error}</p>}
    </div>
  );
}

export default ModmailPage;
