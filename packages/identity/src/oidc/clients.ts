/**
 * The OpenID Connect clients a hospital registers: public clients (a browser application, a native app), which
 * authenticate by PKCE alone (RFC 7636; no client secret lives in a browser). A redirect URI is compared as an
 * exact string (OAuth 2.0 Security BCP, RFC 9700 §4.1.3): no prefix, pattern or port wildcard. A URI written as a
 * path (`/portal/`) is the service's own origin, for an application the platform itself serves.
 */
import { MalformedInputError } from '@medshare/crypto';

/** A registered public client. */
export interface OidcClient {
  readonly clientId: string;
  /** Human name shown on the login page. */
  readonly name: string;
  /** Exact redirect URIs; one beginning with `/` is resolved against the identity service's origin. */
  readonly redirectUris: readonly string[];
  /** Audiences of the access tokens it gets (registered audiences of the hospital). */
  readonly audiences: readonly string[];
  /** Its tokens are also for the hospital's own account endpoints (adding a passkey, after a recent login). */
  readonly accountAccess?: boolean;
}

/** The registry of one hospital's clients. */
export class ClientRegistry {
  private readonly clients = new Map<string, OidcClient>();

  /** @throws MalformedInputError for a client without redirect URIs or with a URI that has a fragment. */
  constructor(clients: readonly OidcClient[]) {
    for (const client of clients) {
      if (client.redirectUris.length === 0) throw new MalformedInputError(`client ${client.clientId} has no redirect URI`);
      for (const uri of client.redirectUris) {
        if (uri.includes('#')) throw new MalformedInputError('a redirect URI has no fragment (RFC 6749 §3.1.2)');
        if (!uri.startsWith('/')) new URL(uri);
      }
      this.clients.set(client.clientId, client);
    }
  }

  /** The client, if registered. */
  get(clientId: string): OidcClient | undefined {
    return this.clients.get(clientId);
  }

  /** The client ids. */
  ids(): string[] {
    return [...this.clients.keys()];
  }

  /** True when `redirectUri` is exactly one of the client's (path-only ones resolved against `origin`). */
  static allows(client: OidcClient, redirectUri: string, origin: string): boolean {
    return client.redirectUris.some((uri) => (uri.startsWith('/') ? `${origin}${uri}` : uri) === redirectUri);
  }
}
