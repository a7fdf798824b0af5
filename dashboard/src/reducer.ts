// How a list page applies live events: each plugin's page turns its events into these
// changes of one item (by its key): add, replace or remove. Events it cannot apply make the
// page refetch.

export interface ListState<T> {
  items: T[];
  /** Bumped when the list must be fetched again. */
  stale: number;
}

export type ListAction<T> =
  | { type: "loaded"; items: T[] }
  | { type: "more"; items: T[] }
  | { type: "upsert"; item: T; prepend?: boolean }
  | { type: "remove"; key: string }
  | { type: "refetch" };

export function listReducer<T>(key: (t: T) => string) {
  return (state: ListState<T>, action: ListAction<T>): ListState<T> => {
    switch (action.type) {
      case "loaded":
        return { ...state, items: action.items };
      case "more": {
        // The next page; items a live event already brought are not repeated.
        const seen = new Set(state.items.map(key));
        return { ...state, items: [...state.items, ...action.items.filter((t) => !seen.has(key(t)))] };
      }
      case "upsert": {
        const k = key(action.item);
        const i = state.items.findIndex((t) => key(t) === k);
        if (i >= 0) {
          const items = state.items.slice();
          items[i] = action.item;
          return { ...state, items };
        }
        const items = action.prepend ? [action.item, ...state.items] : [...state.items, action.item];
        return { ...state, items };
      }
      case "remove":
        return { ...state, items: state.items.filter((t) => key(t) !== action.key) };
      case "refetch":
        return { ...state, stale: state.stale + 1 };
    }
  };
}
