/**
 * The registration centre (RC) of the lightweight multi-server device authentication, and the key
 * derivations it shares with the medical servers (HMAC-SHA256, RFC 2104).
 *
 *   server secret  s_j  = HMAC(root, "medshare/server-secret/v1" ‖ 0 ‖ SID_j)   given to server j once
 *   pairwise key   K_ij = HMAC(s_j,  "medshare/device-key/v1"    ‖ 0 ‖ DID_i)   derived by server j on demand
 *
 * The RC's root secret never leaves the RC. A device is registered once: it receives its random id
 * DID_i and the pairwise keys K_ij for the servers it may use, in one credential. A server keeps no
 * per-device table: it re-derives K_ij from its own secret and the claimed DID_i, so one
 * registration works with every server, and a stolen s_j exposes only server j's pairwise keys
 * (HMAC is a PRF: s_j says nothing about s_k or the root). Revocation is a list the RC keeps and
 * servers consult on every request.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { MalformedInputError, LimitExceededError } from '@medshare/crypto';
import { ConflictError } from '../errors.ts';

/** What a device receives once at registration. Secret: store it in the device's key store. */
export interface DeviceCredential {
  readonly deviceId: string;
  readonly keys: Readonly<Record<string, string>>; // serverId → base64url K_ij
}

/** Who may be a server id or device id: printable, no separators. */
const IDENTIFIER = /^[A-Za-z0-9._~-]{1,128}$/;
const MAX_SERVERS_PER_DEVICE = 256;

/** Validates a server or device identifier. */
export function checkIdentifier(value: unknown, what: string): string {
  if (typeof value !== 'string' || !IDENTIFIER.test(value)) throw new MalformedInputError(`${what} must be 1-128 of A-Z a-z 0-9 . _ ~ -`);
  return value;
}

function prf(key: Uint8Array, label: string, input: string): Buffer {
  return createHmac('sha256', key)
    .update(label)
    .update(Buffer.from([0]))
    .update(input, 'utf8')
    .digest();
}

/** s_j from the root secret (RC only). */
export function deriveServerSecret(root: Uint8Array, serverId: string): Buffer {
  return prf(root, 'medshare/server-secret/v1', checkIdentifier(serverId, 'server id'));
}

/** K_ij from a server's secret (server j and, at registration, the RC). */
export function derivePairwiseKey(serverSecret: Uint8Array, deviceId: string): Buffer {
  return prf(serverSecret, 'medshare/device-key/v1', checkIdentifier(deviceId, 'device id'));
}

/** Answers whether a device registration has been revoked. */
export type DeviceRevocationCheck = (deviceId: string) => Promise<boolean>;

/** The RC's persistent state (secret: `root` must be stored encrypted or with owner-only access). */
export interface RegistrationCentreState {
  readonly root: string; // base64url
  readonly servers: string[];
  readonly devices: string[];
  readonly revoked: string[];
}

/** The registration centre: enrols servers, registers and revokes devices. */
export class RegistrationCentre {
  private readonly servers = new Set<string>();
  private readonly devices = new Set<string>();
  private readonly revoked = new Set<string>();

  constructor(private readonly root: Uint8Array = randomBytes(32)) {
    if (root.length < 32) throw new MalformedInputError('the registration centre root secret must be at least 32 bytes');
  }

  /** Restores a centre from its saved state; MalformedInputError if the state is not one. */
  static fromState(state: RegistrationCentreState): RegistrationCentre {
    const lists = [state?.servers, state?.devices, state?.revoked];
    if (typeof state?.root !== 'string' || !lists.every((l) => Array.isArray(l) && l.every((id) => typeof id === 'string' && IDENTIFIER.test(id)))) {
      throw new MalformedInputError('registration centre state is malformed');
    }
    const centre = new RegistrationCentre(Buffer.from(state.root, 'base64url'));
    state.servers.forEach((id) => centre.servers.add(id));
    state.devices.forEach((id) => centre.devices.add(id));
    state.revoked.forEach((id) => centre.revoked.add(id));
    return centre;
  }

  /** The state to persist after a change. */
  toState(): RegistrationCentreState {
    return { root: Buffer.from(this.root).toString('base64url'), servers: [...this.servers], devices: [...this.devices], revoked: [...this.revoked] };
  }

  /** Enrols a medical server and returns its secret s_j, to be installed on that server only. */
  enrolServer(serverId: string): Buffer {
    this.servers.add(checkIdentifier(serverId, 'server id'));
    return deriveServerSecret(this.root, serverId);
  }

  /** Registers a new device for the given enrolled servers and returns its credential. */
  registerDevice(serverIds: readonly string[]): DeviceCredential {
    if (serverIds.length === 0) throw new MalformedInputError('a device must be registered for at least one server');
    if (serverIds.length > MAX_SERVERS_PER_DEVICE) throw new LimitExceededError(`at most ${MAX_SERVERS_PER_DEVICE} servers per device`);
    for (const id of serverIds) if (!this.servers.has(id)) throw new MalformedInputError(`server ${String(id).slice(0, 128)} is not enrolled`);
    const deviceId = randomBytes(16).toString('base64url');
    if (this.devices.has(deviceId)) throw new ConflictError('device id collision');
    this.devices.add(deviceId);
    const keys = Object.fromEntries(serverIds.map((id) => [id, derivePairwiseKey(deriveServerSecret(this.root, id), deviceId).toString('base64url')]));
    return { deviceId, keys };
  }

  /** Revokes a device: every server refuses its logins and its open sessions from now on. */
  revokeDevice(deviceId: string): void {
    if (!this.devices.has(deviceId)) throw new MalformedInputError('unknown device');
    this.revoked.add(deviceId);
  }

  /** The check servers call on every login and request. Unknown devices count as revoked. */
  readonly isRevoked: DeviceRevocationCheck = async (deviceId) => this.revoked.has(deviceId) || !this.devices.has(deviceId);
}
