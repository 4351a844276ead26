/**
 * Where the portal's services are: the hospital serving it (this origin; it signs in there), and the cloud and the
 * trusted authority it calls from the browser (/portal/config.json, written by the hospital service).
 */

/** The portal's configuration. */
export interface PortalConfig {
  readonly hospital: string;
  readonly cloud: string;
  readonly authority: string;
}

let loaded: PortalConfig | undefined;

/** Loads the configuration once. */
export async function loadConfig(): Promise<PortalConfig> {
  loaded ??= (await (await fetch('/portal/config.json')).json()) as PortalConfig;
  return loaded;
}

/** The URL of `path` at the cloud or the authority (loadConfig first). */
export function at(service: 'cloud' | 'authority', path: string): string {
  if (!loaded) throw new Error('the portal configuration is not loaded');
  return `${loaded[service]}${path}`;
}
