/**
 * The portal's entry: completes an OpenID Connect sign-in when the page is its redirect target, then shows the
 * screens of the signed-in user's role (patient, reader, or — with the hospital's own credential — administrator).
 */
import './globals.ts';
import '@picocss/pico/css/pico.min.css';
import './style.css';
import { adminScreen } from './admin.ts';
import { doctorScreen } from './doctor.ts';
import { busy, field, h, show, status } from './dom.ts';
import { patientScreen } from './patient.ts';
import { securitySection } from './security.ts';
import { completeSignIn, signIn, type Session } from './session.ts';

const main = document.getElementById('main')!;
const who = document.getElementById('who')!;

async function hospitals(): Promise<string[]> {
  const config = (await (await fetch('/portal/config.json')).json()) as { hospitals: string[] };
  return config.hospitals;
}

function landing(list: string[], error?: string): void {
  const out = h('div', { 'aria-live': 'polite' }, error ? status(error, 'error') : null);
  const hospital = h('select', { id: 'hospital' }, ...list.map((x) => h('option', { value: x }, x)));
  const go = h('button', { type: 'button', id: 'sign-in' }, 'Sign in') as HTMLButtonElement;
  go.addEventListener('click', () => busy(go, out, () => signIn(hospital.value)));
  const adminHospital = h('select', { id: 'admin-hospital' }, ...list.map((x) => h('option', { value: x }, x)));
  const admin = h('button', { type: 'button', class: 'secondary', id: 'administer' }, 'Administer') as HTMLButtonElement;
  admin.addEventListener('click', () => {
    who.replaceChildren(h('li', {}, `Administrator of ${adminHospital.value}`));
    adminScreen(main, adminHospital.value);
  });
  show(main,
    h('h1', {}, 'MedShare portal'),
    h('p', {}, 'Patients keep their keys in this browser and decide who reads which records; clinicians read what patients share, decrypted here; every access is proven by the ledger.'),
    h('section', { 'aria-labelledby': 'signin-title' }, h('h2', { id: 'signin-title' }, 'Sign in'), field('Your hospital', hospital), go, out),
    h('section', { 'aria-labelledby': 'admin-title' }, h('h2', { id: 'admin-title' }, 'Hospital administration'), field('Hospital', adminHospital), admin));
}

async function signedIn(session: Session, list: string[]): Promise<void> {
  who.replaceChildren(h('li', {}, `${session.username} · ${session.role} · ${session.hospital}`));
  main.setAttribute('data-role', session.role);
  const screen = h('div', { id: 'screen' });
  show(main, screen, securitySection(session));
  if (session.role === 'patient') await patientScreen(screen, session, list);
  else await doctorScreen(screen, session);
  main.focus();
}

async function start(): Promise<void> {
  const list = await hospitals();
  let session: Session | undefined;
  try {
    session = await completeSignIn();
  } catch (error) {
    return landing(list, `Sign-in failed: ${(error as Error).message}`);
  }
  if (!session) return landing(list);
  try {
    await signedIn(session, list);
  } catch (error) {
    main.prepend(status((error as Error).message, 'error'));
  }
}

void start();
