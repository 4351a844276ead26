/**
 * In-memory implementations of the identity stores (stores.ts): complete and bounded (entries expire,
 * sizes are capped), for demos, single-process deployments and tests.
 */
import type {
  AttemptRecord,
  AttemptStore,
  NonceCache,
  SessionRecord,
  SessionStore,
  SigningKeyStore,
  StoredSigningKey,
  TicketStore,
  UserRecord,
  UserStore,
} from './stores.ts';

const MAX_EXPIRING_ENTRIES = 1_000_000;

/** An expiring map with a hard size bound; expired entries are swept as new ones arrive. */
class ExpiringMap<T> {
  private readonly entries = new Map<string, { value: T; expiresAtMs: number }>();

  get(key: string, nowMs: number): T | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAtMs <= nowMs) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: T, expiresAtMs: number, nowMs: number): void {
    if (this.entries.size >= MAX_EXPIRING_ENTRIES) this.sweep(nowMs);
    if (this.entries.size >= MAX_EXPIRING_ENTRIES) throw new Error('expiring store is full');
    this.entries.set(key, { value, expiresAtMs });
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  private sweep(nowMs: number): void {
    for (const [key, entry] of this.entries) if (entry.expiresAtMs <= nowMs) this.entries.delete(key);
  }
}

/** In-memory UserStore. */
export class MemoryUserStore implements UserStore {
  private readonly byId = new Map<string, UserRecord>();
  private readonly idByName = new Map<string, string>();

  async create(user: UserRecord): Promise<boolean> {
    if (this.idByName.has(user.username)) return false;
    this.byId.set(user.id, structuredClone(user));
    this.idByName.set(user.username, user.id);
    return true;
  }

  async findByUsername(username: string): Promise<UserRecord | undefined> {
    const id = this.idByName.get(username);
    return id === undefined ? undefined : this.findById(id);
  }

  async findById(id: string): Promise<UserRecord | undefined> {
    const user = this.byId.get(id);
    return user && structuredClone(user);
  }

  async findByWebAuthnUserId(handle: string): Promise<UserRecord | undefined> {
    for (const user of this.byId.values()) if (user.webauthnUserId === handle) return structuredClone(user);
    return undefined;
  }

  async update<T>(id: string, change: (user: UserRecord) => T): Promise<T | undefined> {
    const user = this.byId.get(id);
    if (!user) return undefined;
    // Applied to a copy and kept only if `change` returns, like a rolled-back transaction when it throws.
    const draft = structuredClone(user);
    const result = change(draft);
    this.byId.set(id, draft);
    return result;
  }
}

/** In-memory TicketStore. */
export class MemoryTicketStore<T> implements TicketStore<T> {
  private readonly map = new ExpiringMap<T>();

  async put(id: string, value: T, expiresAtMs: number, nowMs: number): Promise<void> {
    this.map.set(id, value, expiresAtMs, nowMs);
  }

  async peek(id: string, nowMs: number): Promise<T | undefined> {
    return this.map.get(id, nowMs);
  }

  async take(id: string, nowMs: number): Promise<T | undefined> {
    const value = this.map.get(id, nowMs);
    this.map.delete(id);
    return value;
  }
}

/** In-memory NonceCache. */
export class MemoryNonceCache implements NonceCache {
  private readonly map = new ExpiringMap<true>();

  async add(nonce: string, expiresAtMs: number, nowMs: number): Promise<boolean> {
    if (this.map.get(nonce, nowMs)) return false;
    this.map.set(nonce, true, expiresAtMs, nowMs);
    return true;
  }
}

/** In-memory SessionStore; expired sessions are dropped once `maxSessions` is reached. */
export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, SessionRecord>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly maxSessions = MAX_EXPIRING_ENTRIES,
  ) {}

  async create(session: SessionRecord): Promise<void> {
    if (this.sessions.size >= this.maxSessions) {
      const nowMs = this.now();
      for (const [id, s] of this.sessions) if (s.expiresAtMs <= nowMs) this.sessions.delete(id);
      if (this.sessions.size >= this.maxSessions) throw new Error('session store is full');
    }
    this.sessions.set(session.id, structuredClone(session));
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    const session = this.sessions.get(id);
    return session && structuredClone(session);
  }

  async activeAmong(ids: readonly string[], nowMs: number): Promise<Set<string>> {
    return new Set(
      ids.filter((id) => {
        const session = this.sessions.get(id);
        return session !== undefined && !session.revoked && session.expiresAtMs > nowMs;
      }),
    );
  }

  async revoke(id: string): Promise<void> {
    const session = this.sessions.get(id);
    if (session) session.revoked = true;
  }

  async revokeAllForUser(userId: string): Promise<number> {
    let count = 0;
    for (const session of this.sessions.values()) {
      if (session.userId === userId && !session.revoked) {
        session.revoked = true;
        count++;
      }
    }
    return count;
  }

  async rotateRefresh(id: string, expected: string, next: string, nowMs: number): Promise<boolean> {
    const session = this.sessions.get(id);
    if (!session || session.revoked || session.expiresAtMs <= nowMs || session.refreshDigest !== expected) return false;
    this.sessions.set(id, { ...session, refreshDigest: next });
    return true;
  }
}

/**
 * In-memory AttemptStore. Bounded: past `maxKeys` the oldest unlocked records are forgotten, so
 * spraying random usernames cannot exhaust memory (locked records are kept).
 */
export class MemoryAttemptStore implements AttemptStore {
  private readonly records = new Map<string, AttemptRecord>();

  constructor(
    private readonly maxKeys = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  async update<T>(key: string, change: (record: AttemptRecord) => T): Promise<T> {
    let record = this.records.get(key);
    if (!record) {
      if (this.records.size >= this.maxKeys) this.forgetOldestUnlocked();
      record = { failures: 0, lockedUntilMs: 0, lastFailureMs: 0 };
      this.records.set(key, record);
    }
    return change(record);
  }

  async remove(key: string): Promise<void> {
    this.records.delete(key);
  }

  async removeAll(prefix: string): Promise<void> {
    for (const key of this.records.keys()) if (key.startsWith(prefix)) this.records.delete(key);
  }

  private forgetOldestUnlocked(): void {
    const nowMs = this.now();
    let budget = Math.max(1, Math.floor(this.maxKeys / 10));
    for (const [key, record] of this.records) {
      if (budget === 0) break;
      if (record.lockedUntilMs <= nowMs) {
        this.records.delete(key);
        budget--;
      }
    }
  }
}

/** In-memory SigningKeyStore: the keys of a ring that need not survive the process. */
export class MemorySigningKeyStore implements SigningKeyStore {
  private keys: StoredSigningKey[] = [];

  async initialise(fresh: StoredSigningKey): Promise<StoredSigningKey[]> {
    if (this.keys.length === 0) this.keys = [fresh];
    return [...this.keys];
  }

  async rotate(fresh: StoredSigningKey, nowMs: number, forgetUpToMs: number): Promise<StoredSigningKey[]> {
    const retired = this.keys.map((key) => (key.retiredAtMs === undefined ? { ...key, retiredAtMs: nowMs } : key));
    this.keys = [...retired.filter((key) => key.retiredAtMs! > forgetUpToMs), fresh];
    return [...this.keys];
  }
}
