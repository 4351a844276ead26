/**
 * The portal's entry: completes an OpenID Connect sign-in when the page is its redirect target, then shows the
 * screens of the signed-in user's role (patient, reader, or — with the hospital's own credential — administrator).
 */
import './globals.ts';
import '@picocss/pico/css/pico.min.css';
import './style.css';
import { adminScreen } from './admin.ts';
import { doctorScreen } from './doctor.ts';
import { loadConfig } from './config.ts';
import { busy, h, show, status } from './dom.ts';
import { patientScreen } from './patient.ts';
import { securitySection } from './security.ts';
import { completeSignIn, signIn, type Session } from './session.ts';

const main = document.getElementById('main')!;
const who = document.getElementById('who')!;

function landing(hospital: string, error?: string): void {
  const out = h('div', { 'aria-live': 'polite' }, error ? status(error, 'error') : null);
  const go = h('button', { type: 'button', id: 'sign-in' }, `Sign in with ${hospital}`) as HTMLButtonElement;
  go.addEventListener('click', () => busy(go, out, () => signIn(hospital)));
  const admin = h('button', { type: 'button', class: 'secondary', id: 'administer' }, 'Administer') as HTMLButtonElement;
  admin.addEventListener('click', () => {
    who.replaceChildren(h('li', {}, `Administrator of ${hospital}`));
    adminScreen(main, hospital);
  });
  show(
    main,
    h('h1', {}, `MedShare portal — ${hospital}`),
    h(
      'p',
      {},
      'Patients keep their keys in this browser and decide who reads which records; clinicians read what patients share, decrypted here; every access is proven by the ledger.',
    ),
    h(
      'section',
      { 'aria-labelledby': 'signin-title' },
      h('h2', { id: 'signin-title' }, 'Sign in'),
      h('p', {}, `With your ${hospital} account: password and one-time code, or a passkey.`),
      go,
      out,
    ),
    h('section', { 'aria-labelledby': 'admin-title' }, h('h2', { id: 'admin-title' }, 'Hospital administration'), admin),
  );
}

async function signedIn(session: Session): Promise<void> {
  who.replaceChildren(h('li', {}, `${session.username} · ${session.role} · ${session.hospital}`));
  main.setAttribute('data-role', session.role);
  const screen = h('div', { id: 'screen' });
  show(main, screen, securitySection(session));
  if (session.role === 'patient') await patientScreen(screen, session);
  else await doctorScreen(screen, session);
  main.focus();
}

async function start(): Promise<void> {
  const { hospital } = await loadConfig();
  let session: Session | undefined;
  try {
    session = await completeSignIn();
  } catch (error) {
    return landing(hospital, `Sign-in failed: ${(error as Error).message}`);
  }
  if (!session) return landing(hospital);
  try {
    await signedIn(session);
  } catch (error) {
    main.prepend(status((error as Error).message, 'error'));
  }
}

void start();
