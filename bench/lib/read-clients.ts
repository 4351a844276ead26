/**
 * The doctors of bench/platform.ts, in a process of their own so that the server's process measures the server:
 * each logs in on its own device key, then loops reading one random record at a time over HTTP, every read with
 * its DPoP-bound token and a fresh proof. The first `warmupSeconds` are not
 * measured (JIT and wasm tier-up in fresh workers); the parent is told when measuring starts, and gets every
 * latency of the measured `seconds`, their wall time and this process's CPU time in them.
 */
import { once } from 'node:events';
import { Agent, request as httpRequest } from 'node:http';
import { PlatformClient, type Session } from '@medshare/server';

export interface ReadTask {
  /** The cloud's URL. */
  base: string;
  /** The doctors' hospital's URL (their logins). */
  hospitalUrl: string;
  patient: string;
  category: string;
  doctors: Array<{ hospital: string; username: string; password: string; totpSecret: string }>;
  recordIds: string[];
  warmupSeconds: number;
  seconds: number;
}

/** What the parent receives: 'measuring' when the warm-up ends, then the result (types only: importing this module runs it). */
export type ClientMessage = 'measuring' | ReadResult;

export interface ReadResult {
  latencies: number[];
  seconds: number;
  cpuMs: number;
  failure?: string;
}

const [task] = (await once(process, 'message')) as [ReadTask];
const url = new URL(`/cloud/patients/${task.patient}/read`, task.base);
// node:http with kept-alive connections, one per doctor: a lighter client than fetch, so less of the shared cores go to load generation.
const agent = new Agent({ keepAlive: true, maxSockets: task.doctors.length });
const client = new PlatformClient({
  authority: new URL(task.base),
  cloud: new URL(task.base),
  hospitals: { [task.doctors[0]!.hospital]: new URL(task.hospitalUrl) },
});
const sessions = await Promise.all(task.doctors.map((d) => client.login(d.hospital, d.username, d.password, d.totpSecret)));

/** One read: POST, the whole response body, its status. */
async function read(session: Session, recordId: string): Promise<number> {
  const body = JSON.stringify({ category: task.category, recordIds: [recordId] });
  const dpop = await session.device.dpop.proof('POST', url, { accessToken: session.token });
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      url,
      {
        method: 'POST',
        agent,
        headers: { authorization: `DPoP ${session.token}`, dpop, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (response) => {
        response.on('data', () => undefined);
        response.on('end', () => resolve(response.statusCode ?? 0));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

const latencies: number[] = [];
let failure: string | undefined;
let cpu: NodeJS.CpuUsage | undefined;
const measureFrom = performance.now() + task.warmupSeconds * 1000;
const until = measureFrom + task.seconds * 1000;
const measuring = setTimeout(() => {
  cpu = process.cpuUsage();
  process.send!('measuring' satisfies ClientMessage);
}, task.warmupSeconds * 1000);
await Promise.all(
  sessions.map(async (session) => {
    while (failure === undefined && performance.now() < until) {
      const t = performance.now();
      const status = await read(session, task.recordIds[Math.floor(Math.random() * task.recordIds.length)]!);
      if (status !== 200) failure = `read failed: HTTP ${status}`;
      else if (t >= measureFrom) latencies.push(performance.now() - t);
    }
  }),
);
clearTimeout(measuring);
const used = process.cpuUsage(cpu);
agent.destroy();
process.send!({ latencies, seconds: (performance.now() - measureFrom) / 1000, cpuMs: (used.user + used.system) / 1000, failure } satisfies ClientMessage);
process.disconnect();
