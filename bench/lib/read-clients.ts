/**
 * The doctors of bench/platform.ts, in a process of their own so that the server's process measures the server:
 * one loop per token, each reading one random record at a time over HTTP for the given time. Reports every
 * latency, the wall time and this process's CPU time to the parent.
 */
import { once } from 'node:events';

export interface ReadTask {
  base: string;
  patient: string;
  category: string;
  tokens: string[];
  recordIds: string[];
  seconds: number;
}

export interface ReadResult {
  latencies: number[];
  seconds: number;
  cpuMs: number;
  failure?: string;
}

const [task] = (await once(process, 'message')) as [ReadTask];
const url = new URL(`/cloud/patients/${task.patient}/read`, task.base);
const latencies: number[] = [];
let failure: string | undefined;
const cpu = process.cpuUsage();
const start = performance.now();
const until = start + task.seconds * 1000;
await Promise.all(task.tokens.map(async (token) => {
  while (failure === undefined && performance.now() < until) {
    const id = task.recordIds[Math.floor(Math.random() * task.recordIds.length)]!;
    const t = performance.now();
    const response = await fetch(url, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ category: task.category, recordIds: [id] }),
    });
    await response.arrayBuffer();
    if (response.status !== 200) failure = `read failed: HTTP ${response.status}`;
    else latencies.push(performance.now() - t);
  }
}));
const used = process.cpuUsage(cpu);
process.send!({ latencies, seconds: (performance.now() - start) / 1000, cpuMs: (used.user + used.system) / 1000, failure } satisfies ReadResult);
process.disconnect();
