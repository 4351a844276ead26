/**
 * Her own sign-in factors: adding a passkey (WebAuthn) to her account. The hospital asks for a step-up — a
 * DPoP-bound token of a login at most five minutes old, and a proof by this page's key — and the browser's
 * authenticator makes the credential (the private key never leaves the authenticator).
 */
import { api } from './api.ts';
import { busy, h, status } from './dom.ts';
import type { Session } from './session.ts';

/** The "Security" section. */
export function securitySection(session: Session): HTMLElement {
  const out = h('div', { 'aria-live': 'polite' });
  const add = h('button', { type: 'button', class: 'secondary', id: 'add-passkey' }, 'Add a passkey') as HTMLButtonElement;
  const stepUp = async <T>(path: string, body?: unknown) => {
    const url = `/identity/${session.hospital}/${path}`;
    return api<T>('POST', url, {
      token: session.token,
      dpop: await session.device.proof('POST', url, { accessToken: session.token }),
      ...(body === undefined ? {} : { body }),
    });
  };
  add.addEventListener('click', () =>
    busy(add, out, async () => {
      const options = await stepUp<PublicKeyCredentialCreationOptionsJSON>('webauthn/register/options');
      const credential = (await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) })) as PublicKeyCredential;
      await stepUp('webauthn/register', { response: credential.toJSON() });
      out.replaceChildren(status('Passkey added: next time, choose “Sign in with a passkey”.', 'ok'));
    }),
  );
  return h(
    'section',
    { id: 'security', 'aria-labelledby': 'security-title' },
    h('h2', { id: 'security-title' }, 'Security'),
    h('p', {}, 'Sign in without a password, with this device’s authenticator.'),
    add,
    out,
  );
}
