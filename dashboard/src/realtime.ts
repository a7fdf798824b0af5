// One WebSocket per tab to the bot's gateway (`/ws` on the page's own origin): authenticates
// with the session cookie, keeps each guild room's last `seq` and resumes from it after a
// reconnect (backoff with jitter), and tells a room to refetch when the server says events
// were missed (`resume_gap`).

/** A frame the server sends. */
export interface Frame {
  event: string;
  data: any;
  guildId?: string;
  seq?: number;
  timestamp?: number;
}

/** The bits of a WebSocket this client uses (a fake one in the tests). */
export interface SocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
}

/** `live`: authenticated; `reconnecting`: waiting to try again; `signed-out`: stop. */
export type Status = "connecting" | "live" | "reconnecting" | "signed-out";

/** Milliseconds to wait before attempt `attempt` (0-based): doubling from half a second up
 *  to 30 s, each spread over [50%, 100%] so that a thousand tabs do not return at once. */
export function backoff(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(30_000, 500 * 2 ** Math.min(attempt, 16));
  return Math.round(ceiling * (0.5 + random() / 2));
}

interface Room {
  handlers: Set<(f: Frame) => void>;
  gaps: Set<() => void>;
  lastSeq?: number;
  /** The server confirmed the subscription (since the last connect). */
  joined?: boolean;
  /** A subscription was asked for on an earlier connection. */
  asked?: boolean;
  /** Joined again with no seq to resume from (the connection dropped before the first
   *  confirmation): what happened meanwhile is unknown, so the page refetches once joined. */
  blind?: boolean;
}

/** How long a room with no listener is kept before leaving it: moving between a server's
 *  pages re-uses it instead of leaving and joining again (the server allows few of those). */
export const LINGER_MS = 3000;

export interface ClientOptions {
  url: string;
  connect?: (url: string) => SocketLike;
  random?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
}

/** The tab's gateway connection. */
export class RealtimeClient {
  status: Status = "connecting";
  private socket: SocketLike | null = null;
  private attempt = 0;
  private epoch: string | undefined;
  private rooms = new Map<string, Room>();
  /** The owner stream (migration progress): no guild, its own seq. */
  private owner: Room = { handlers: new Set(), gaps: new Set() };
  private statusListeners = new Set<(s: Status) => void>();
  private stopped = false;
  private readonly opts: Required<ClientOptions>;

  constructor(opts: ClientOptions) {
    this.opts = {
      connect: (url) => new WebSocket(url) as unknown as SocketLike,
      random: Math.random,
      setTimer: (fn, ms) => setTimeout(fn, ms),
      ...opts,
    };
    this.open();
  }

  /** Listens to the connection's status; returns the way to stop listening. */
  onStatus(fn: (s: Status) => void): () => void {
    this.statusListeners.add(fn);
    fn(this.status);
    return () => this.statusListeners.delete(fn);
  }

  /** Joins `guildId`'s room: `handler` gets its events, `onGap` is called when events were
   *  missed and the page must refetch. Returns the way to leave. */
  subscribe(guildId: string, handler: (f: Frame) => void, onGap: () => void): () => void {
    let room = this.rooms.get(guildId);
    if (!room) {
      room = { handlers: new Set(), gaps: new Set() };
      this.rooms.set(guildId, room);
      if (this.status === "live") this.sendSubscribe(guildId, room);
    }
    room.handlers.add(handler);
    room.gaps.add(onGap);
    return () => {
      const r = this.rooms.get(guildId);
      if (!r) return;
      r.handlers.delete(handler);
      r.gaps.delete(onGap);
      if (r.handlers.size === 0) {
        this.opts.setTimer(() => {
          if (this.rooms.get(guildId) === r && r.handlers.size === 0) {
            this.rooms.delete(guildId);
            if (this.status === "live") this.send({ type: "unsubscribe", guildId });
          }
        }, LINGER_MS);
      }
    };
  }

  /** Listens to the owner stream (owners only): `handler` gets its events, `onGap` is called
   *  when some were missed. Returns the way to stop. */
  onOwner(handler: (f: Frame) => void, onGap: () => void): () => void {
    this.owner.handlers.add(handler);
    this.owner.gaps.add(onGap);
    return () => {
      this.owner.handlers.delete(handler);
      this.owner.gaps.delete(onGap);
    };
  }

  /** The last seq seen in a room (for tests and diagnostics). */
  lastSeq(guildId: string): number | undefined {
    return this.rooms.get(guildId)?.lastSeq;
  }

  /** Closes for good. */
  stop(): void {
    this.stopped = true;
    this.socket?.close(1000, "page closed");
  }

  private setStatus(s: Status) {
    this.status = s;
    for (const fn of this.statusListeners) fn(s);
  }

  private send(msg: unknown) {
    this.socket?.send(JSON.stringify(msg));
  }

  private sendSubscribe(guildId: string, room: Room) {
    const msg: Record<string, unknown> = { type: "subscribe", guildId };
    if (room.lastSeq !== undefined) {
      msg.lastSeq = room.lastSeq;
      if (this.epoch) msg.epoch = this.epoch;
    }
    this.send(msg);
    room.asked = true;
  }

  private open() {
    if (this.stopped) return;
    const socket = this.opts.connect(this.opts.url);
    this.socket = socket;
    socket.onmessage = (ev) => this.receive(JSON.parse(String(ev.data)) as Frame);
    socket.onclose = (ev) => this.closed(ev.code);
  }

  private receive(f: Frame) {
    switch (f.event) {
      case "hello":
        if (this.epoch && f.data?.epoch !== this.epoch) {
          // Another run of the server: the old seqs mean nothing there.
          const all = [...this.rooms.values(), this.owner];
          for (const room of all) room.lastSeq = undefined;
          this.epoch = f.data?.epoch;
          for (const room of all) room.gaps.forEach((g) => g());
        }
        this.epoch = f.data?.epoch;
        // The cookie authenticates; an owner resumes its stream from the last seq it saw.
        this.send(
          this.owner.lastSeq === undefined
            ? { type: "auth" }
            : { type: "auth", ownerSeq: this.owner.lastSeq, epoch: this.epoch },
        );
        return;
      case "authenticated":
        this.attempt = 0;
        this.setStatus("live");
        for (const [guildId, room] of this.rooms) {
          room.joined = false;
          if (room.asked && room.lastSeq === undefined) room.blind = true;
          this.sendSubscribe(guildId, room);
        }
        return;
      case "error":
        // Too many joins at once: try the rooms not joined yet again in a second.
        if (f.data?.code === "rate_limited") {
          this.opts.setTimer(() => {
            if (this.status !== "live") return;
            for (const [guildId, room] of this.rooms) if (!room.joined) this.sendSubscribe(guildId, room);
          }, 1000);
        }
        return;
      case "resume_gap": {
        const room = f.guildId ? this.rooms.get(f.guildId) : this.owner;
        if (room) {
          room.lastSeq = f.data?.latestSeq;
          room.gaps.forEach((g) => g());
        }
        return;
      }
      case "unsubscribed": {
        // Access to the server was taken away: the page refetches (and learns it has none).
        const room = f.guildId ? this.rooms.get(f.guildId) : undefined;
        if (room && f.data?.reason === "access_revoked") {
          room.joined = false;
          room.gaps.forEach((g) => g());
        }
        return;
      }
      case "subscribed": {
        const room = f.guildId ? this.rooms.get(f.guildId) : undefined;
        if (!room) return;
        room.joined = true;
        if (room.lastSeq === undefined) room.lastSeq = f.data?.seq;
        if (room.blind) {
          room.blind = false;
          room.gaps.forEach((g) => g());
        }
        return;
      }
      default: {
        const room = f.guildId ? this.rooms.get(f.guildId) : this.owner;
        if (!room) return;
        if (typeof f.seq === "number") {
          if (room.lastSeq !== undefined && f.seq <= room.lastSeq) return; // seen already
          room.lastSeq = f.seq;
        }
        room.handlers.forEach((h) => h(f));
      }
    }
  }

  private closed(code: number) {
    this.socket = null;
    if (this.stopped) return;
    if (code === 4003) {
      // Signed out (here or in another tab): no point in retrying.
      this.setStatus("signed-out");
      return;
    }
    this.setStatus("reconnecting");
    const wait = backoff(this.attempt++, this.opts.random);
    this.opts.setTimer(() => this.open(), wait);
  }
}

/** The `/ws` URL of the page's own origin (`wss://` under https). */
export function gatewayUrl(loc: { protocol: string; host: string }): string {
  return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}/ws`;
}
