// The one hook every live page uses: fetch, join the guild's room, apply each event (or
// refetch when it cannot, or when events were missed).

import { useEffect, useReducer, useState, createContext, useContext } from "react";
import { RealtimeClient, Frame } from "./realtime";
import { ListAction, listReducer } from "./reducer";

export const Realtime = createContext<RealtimeClient | null>(null);

export function useRealtime(): RealtimeClient | null {
  return useContext(Realtime);
}

/** Calls `onEvent` with each event of `guildId`'s room, and `onGap` when some were missed. */
export function useGuildEvents(guildId: string, onEvent: (f: Frame) => void, onGap: () => void) {
  const client = useRealtime();
  useEffect(() => {
    if (!client) return;
    return client.subscribe(guildId, onEvent, onGap);
  }, [client, guildId]);
}

/** One page of a list and the cursor of the next (`null`: the last page). */
export interface Page<T> {
  items: T[];
  next: string | number | null;
}

/** A live list, a page at a time: `fetchPage` loads the page after `cursor`; `toAction` turns
 *  an event into a change of it (or `null`: not about this list; `"refetch"`: load again). */
export function useRealtimeData<T>(
  guildId: string,
  fetchPage: (cursor: string | number | null) => Promise<Page<T>>,
  key: (t: T) => string,
  toAction: (f: Frame) => ListAction<T> | "refetch" | null,
  deps: unknown[] = [],
) {
  const [state, dispatch] = useReducer(listReducer<T>(key), { items: [], stale: 0 });
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [next, setNext] = useState<string | number | null>(null);
  useEffect(() => {
    let live = true;
    setLoading(true);
    fetchPage(null)
      .then((p) => {
        if (!live) return;
        dispatch({ type: "loaded", items: p.items });
        setNext(p.next);
        setError(null);
      })
      .catch((e) => live && setError(e.message))
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
  }, [guildId, state.stale, ...deps]);
  useGuildEvents(
    guildId,
    (f) => {
      const a = toAction(f);
      if (a === "refetch") dispatch({ type: "refetch" });
      else if (a) dispatch(a);
    },
    () => dispatch({ type: "refetch" }),
  );
  const more = async () => {
    if (next === null) return;
    setLoading(true);
    try {
      const p = await fetchPage(next);
      dispatch({ type: "more", items: p.items });
      setNext(p.next);
    } catch (e: any) {
      setError(e.message);
    } finally {
      setLoading(false);
    }
  };
  return { items: state.items, loading, error, hasMore: next !== null, more, reload: () => dispatch({ type: "refetch" }) };
}
