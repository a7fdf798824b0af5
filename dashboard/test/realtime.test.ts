import { describe, expect, it } from "vitest";
import { backoff, Frame, RealtimeClient, SocketLike, gatewayUrl } from "../src/realtime";

class FakeSocket implements SocketLike {
  sent: any[] = [];
  closed = false;
  onopen: ((ev: any) => void) | null = null;
  onmessage: ((ev: { data: any }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.closed = true;
  }
  frame(f: Frame) {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
  drop(code = 1006) {
    this.onclose?.({ code, reason: "" });
  }
}

function harness() {
  const sockets: FakeSocket[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  const client = new RealtimeClient({
    url: "ws://x/ws",
    connect: () => {
      const s = new FakeSocket();
      sockets.push(s);
      return s;
    },
    random: () => 0.5,
    setTimer: (fn, ms) => timers.push({ fn, ms }),
  });
  const last = () => sockets[sockets.length - 1];
  const handshake = (epoch = "e1") => {
    last().frame({ event: "hello", data: { epoch } });
    last().frame({ event: "authenticated", data: {} });
  };
  return { client, sockets, timers, last, handshake };
}

describe("backoff", () => {
  it("doubles from half a second, stays within 50–100% of its ceiling, and stops at 30 s", () => {
    expect(backoff(0, () => 0)).toBe(250);
    expect(backoff(0, () => 1)).toBe(500);
    expect(backoff(3, () => 1)).toBe(4000);
    expect(backoff(40, () => 1)).toBe(30_000);
    for (let i = 0; i < 100; i++) {
      const d = backoff(5, Math.random);
      expect(d).toBeGreaterThanOrEqual(8000);
      expect(d).toBeLessThanOrEqual(16000);
    }
  });
});

describe("RealtimeClient", () => {
  it("authenticates with the cookie and joins its rooms once live", () => {
    const h = harness();
    const events: Frame[] = [];
    h.client.subscribe("1", (f) => events.push(f), () => {});
    h.handshake();
    expect(h.last().sent).toEqual([{ type: "auth" }, { type: "subscribe", guildId: "1" }]);
    expect(h.client.status).toBe("live");
    h.last().frame({ event: "subscribed", guildId: "1", data: { seq: 4 } });
    h.last().frame({ event: "tags:tag_created", guildId: "1", seq: 5, data: { tag: { name: "a" } } });
    h.last().frame({ event: "tags:tag_created", guildId: "2", seq: 9, data: {} });
    expect(events.map((e) => e.seq)).toEqual([5]);
    expect(h.client.lastSeq("1")).toBe(5);
  });

  it("reconnects after a drop with backoff and resumes each room from its last seq", () => {
    const h = harness();
    const events: number[] = [];
    h.client.subscribe("1", (f) => events.push(f.seq!), () => {});
    h.handshake("e1");
    h.last().frame({ event: "subscribed", guildId: "1", data: { seq: 0 } });
    h.last().frame({ event: "x:y", guildId: "1", seq: 1, data: {} });
    h.last().drop();
    expect(h.client.status).toBe("reconnecting");
    expect(h.timers.map((t) => t.ms)).toEqual([375]);
    h.timers[0].fn();
    h.handshake("e1");
    expect(h.last().sent).toEqual([{ type: "auth" }, { type: "subscribe", guildId: "1", lastSeq: 1, epoch: "e1" }]);
    // The replay may repeat what was seen: applied once.
    h.last().frame({ event: "x:y", guildId: "1", seq: 1, data: {} });
    h.last().frame({ event: "x:y", guildId: "1", seq: 2, data: {} });
    expect(events).toEqual([1, 2]);
    // Each failed attempt waits longer; a success starts over.
    h.last().drop();
    h.timers[1].fn();
    h.last().drop();
    expect(h.timers.map((t) => t.ms)).toEqual([375, 375, 750]);
  });

  it("refetches once joined again when the first connection dropped before the join was confirmed", () => {
    const h = harness();
    let gaps = 0;
    h.client.subscribe("1", () => {}, () => gaps++);
    h.handshake("e1");
    // Dropped before `subscribed`: no seq to resume from.
    h.last().drop();
    h.timers[0].fn();
    h.handshake("e1");
    expect(h.last().sent).toEqual([{ type: "auth" }, { type: "subscribe", guildId: "1" }]);
    expect(gaps).toBe(0);
    h.last().frame({ event: "subscribed", guildId: "1", data: { seq: 7 } });
    expect(gaps).toBe(1);
    expect(h.client.lastSeq("1")).toBe(7);
    // Once joined, a later drop resumes from the seq: no refetch.
    h.last().drop();
    h.timers[1].fn();
    h.handshake("e1");
    h.last().frame({ event: "subscribed", guildId: "1", data: { seq: 9 } });
    expect(gaps).toBe(1);
  });

  it("asks the page to refetch when events were missed or the server restarted", () => {
    const h = harness();
    let gaps = 0;
    h.client.subscribe("1", () => {}, () => gaps++);
    h.handshake("e1");
    h.last().frame({ event: "resume_gap", guildId: "1", data: { latestSeq: 40 } });
    expect(gaps).toBe(1);
    expect(h.client.lastSeq("1")).toBe(40);
    h.last().drop();
    h.timers[0].fn();
    h.handshake("e2");
    expect(gaps).toBe(2);
    expect(h.last().sent[1]).toEqual({ type: "subscribe", guildId: "1" });
  });

  it("keeps a room a moment for the next page, and retries joins the server rate-limited", () => {
    const h = harness();
    const off = h.client.subscribe("1", () => {}, () => {});
    h.handshake();
    off();
    const events: Frame[] = [];
    h.client.subscribe("1", (f) => events.push(f), () => {});
    h.timers[0].fn(); // the linger ends: the room has a listener again, so it stays
    expect(h.last().sent).toEqual([{ type: "auth" }, { type: "subscribe", guildId: "1" }]);
    h.client.subscribe("2", () => {}, () => {});
    h.last().frame({ event: "error", data: { code: "rate_limited" } });
    h.last().sent.length = 0;
    h.timers[1].fn();
    expect(h.last().sent).toEqual([
      { type: "subscribe", guildId: "1" },
      { type: "subscribe", guildId: "2" },
    ]);
    h.last().frame({ event: "subscribed", guildId: "1", data: { seq: 0 } });
    h.last().frame({ event: "a:b", guildId: "1", seq: 1, data: {} });
    expect(events.length).toBe(1);
  });

  it("stops when the session was signed out, and leaves a room after its last listener", () => {
    const h = harness();
    const off = h.client.subscribe("1", () => {}, () => {});
    h.handshake();
    off();
    expect(h.timers.map((t) => t.ms)).toEqual([3000]);
    h.timers[0].fn();
    expect(h.last().sent.pop()).toEqual({ type: "unsubscribe", guildId: "1" });
    h.timers.length = 0;
    h.last().drop(4003);
    expect(h.client.status).toBe("signed-out");
    expect(h.timers).toEqual([]);
  });

  it("makes the page refetch when access to the server is taken away", () => {
    const h = harness();
    let gaps = 0;
    h.client.subscribe("1", () => {}, () => gaps++);
    h.handshake();
    h.last().frame({ event: "unsubscribed", guildId: "1", data: {} });
    expect(gaps).toBe(0);
    h.last().frame({ event: "unsubscribed", guildId: "1", data: { reason: "access_revoked" } });
    expect(gaps).toBe(1);
  });

  it("connects to wss under https", () => {
    expect(gatewayUrl({ protocol: "https:", host: "bot.example.org" })).toBe("wss://bot.example.org/ws");
    expect(gatewayUrl({ protocol: "http:", host: "127.0.0.1:3001" })).toBe("ws://127.0.0.1:3001/ws");
  });
});
