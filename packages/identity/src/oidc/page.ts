/**
 * The hospital's sign-in pages for the OpenID Connect authorization endpoint: plain HTML forms (password, then
 * the one-time code), which work without script, and a small script for passkeys and security keys (WebAuthn needs
 * the browser's API). Every value is HTML-escaped; the pages forbid framing and inline script (their CSP).
 */

/** Escapes text for HTML element content and double-quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f6f8;color:#1b1f24}
main{max-width:26rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 3px #0003}
h1{font-size:1.4rem;margin-top:0}label{display:block;margin-top:1rem;font-weight:600}
input{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;border:1px solid #59636e;border-radius:4px}
button{margin-top:1.2rem;padding:.6rem 1rem;font-size:1rem;border-radius:4px;border:1px solid #0b4f9c;background:#0b5cad;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#0b4f9c}
:focus-visible{outline:3px solid #f5a623;outline-offset:2px}
.error{color:#a4000f;font-weight:600}.client{color:#3b434c}`;

/** The content-security policy of the pages; `redirectOrigin` is where the code form's redirect goes. */
export function pageSecurityPolicy(redirectOrigin: string): string {
  return `default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'self' ${redirectOrigin}; frame-ancestors 'none'; base-uri 'none'`;
}

function layout(title: string, body: string, script: string | undefined): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style>${script ? `<script src="${escapeHtml(script)}" defer></script>` : ''}</head>
<body><main>${body}</main></body></html>`;
}

function errorLine(error: string | undefined): string {
  return error ? `<p class="error" role="alert" id="error">${escapeHtml(error)}</p>` : '<p class="error" role="alert" id="error"></p>';
}

/** Step 1: username and password, or a passkey. */
export function passwordPage(p: { hospital: string; clientName: string; requestId: string; base: string; error?: string }): string {
  return layout(
    `Sign in — ${p.hospital}`,
    `<h1>Sign in to ${escapeHtml(p.hospital)}</h1>
<p class="client">for <strong>${escapeHtml(p.clientName)}</strong></p>${errorLine(p.error)}
<form method="post" action="${escapeHtml(p.base)}/oidc/login">
<input type="hidden" name="request" value="${escapeHtml(p.requestId)}">
<label for="username">Username</label><input id="username" name="username" autocomplete="username webauthn" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Continue</button></form>
<button type="button" class="secondary" id="passkey" data-request="${escapeHtml(p.requestId)}" data-base="${escapeHtml(p.base)}">Sign in with a passkey</button>`,
    `${p.base}/oidc/login.js`,
  );
}

/** Step 2: the one-time code (or the security key, when she registered one). */
export function secondFactorPage(p: { hospital: string; requestId: string; ticket: string; factors: string[]; base: string; error?: string }): string {
  const key = p.factors.includes('webauthn')
    ? `<button type="button" class="secondary" id="security-key" data-request="${escapeHtml(p.requestId)}" data-ticket="${escapeHtml(p.ticket)}" data-base="${escapeHtml(p.base)}">Use my security key</button>`
    : '';
  return layout(
    `Second factor — ${p.hospital}`,
    `<h1>Confirm it is you</h1>${errorLine(p.error)}
<form method="post" action="${escapeHtml(p.base)}/oidc/login/totp">
<input type="hidden" name="request" value="${escapeHtml(p.requestId)}"><input type="hidden" name="ticket" value="${escapeHtml(p.ticket)}">
<label for="code">One-time code from your authenticator app</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6,8}" required autofocus>
<button type="submit">Sign in</button></form>${key}`,
    `${p.base}/oidc/login.js`,
  );
}

/** An error the user must see (the client or its redirect URI is not valid: she is not sent anywhere). */
export function errorPage(message: string): string {
  return layout('Sign-in error', `<h1>This sign-in request cannot be completed</h1><p class="error" role="alert">${escapeHtml(message)}</p>`, undefined);
}

/**
 * The pages' script: passkey login (first and second factor) and security-key second factor. It speaks the
 * identity service's JSON login routes and follows the redirect the OIDC routes answer with.
 */
export const LOGIN_SCRIPT = `'use strict';
const post = async (url, body) => {
  const init = body === undefined ? { method: 'POST' } : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
  const r = await fetch(url, init);
  const json = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(json.detail || json.error_description || ('HTTP ' + r.status));
  return json;
};
const assertion = async (options) =>
  (await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) })).toJSON();
const fail = (e) => { document.getElementById('error').textContent = e.message; };
const passkey = document.getElementById('passkey');
if (passkey) passkey.addEventListener('click', async () => {
  try {
    const { base, request } = passkey.dataset;
    const { ticket, options } = await post(base + '/login/passkey/options', undefined);
    const { location } = await post(base + '/oidc/login/passkey', { request, ticket, response: await assertion(options) });
    window.location.assign(location);
  } catch (e) { fail(e); }
});
const key = document.getElementById('security-key');
if (key) key.addEventListener('click', async () => {
  try {
    const { base, request, ticket } = key.dataset;
    const options = await post(base + '/login/webauthn/options', { ticket });
    const { location } = await post(base + '/oidc/login/webauthn', { request, ticket, response: await assertion(options) });
    window.location.assign(location);
  } catch (e) { fail(e); }
});
`;
