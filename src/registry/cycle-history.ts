import * as t from 'io-ts';
import { redactText } from '../redact.js';
import { bindingMismatch, type Binding } from './binding.js';
import { bindingCodec } from './entry.js';
import { readJsonFile, writeFileAtomic } from './files.js';
import { numbersOf, type LastCycle } from './last-cycle.js';

/** Most cycles kept: at a poll of a minute, the last few hours; the file stays around 100 KB. */
export const HISTORY_CYCLES = 200;

/** Each cycle as the last-cycle file keeps it; decoded loosely (its numbers are what the dashboard plots). */
const historyCodec = t.type({
  version: t.literal(1),
  cycles: t.array(t.intersection([
    t.type({ cycle: t.number, finishedAt: t.string, ok: t.boolean, error: t.union([t.string, t.null]), summary: t.union([t.record(t.string, t.unknown), t.null]) }),
    t.partial({ binding: bindingCodec }),
  ])),
});

export function cycleHistoryPath(registryPath: string): string {
  return `${registryPath}.cycles.json`;
}

/**
 * The recent cycles recorded next to this registry (`<registry path>.cycles.json`), oldest first, only those that ran
 * on `binding`'s database and bucket; [] when none was recorded. The dashboard's History reads it, so the chart goes
 * on across restarts.
 */
export async function readCycleHistory(registryPath: string, binding: Binding): Promise<LastCycle[]> {
  const read = await readJsonFile(cycleHistoryPath(registryPath), historyCodec, 'cycles');
  if (read === undefined) return [];
  return read.cycles.filter((c) => bindingMismatch(c.binding, binding) === null).map((c) => ({ ...c, summary: numbersOf(c.summary) }));
}

/**
 * Adds a finished cycle to the history, keeping the last HISTORY_CYCLES of its database and bucket (cycles of another
 * binding are dropped: they are not this registry's). Atomic like the last-cycle file; secrets in `error` masked.
 * An unreadable history is started anew rather than stopping the daemon: it is a record for people, not state.
 */
export async function appendCycleHistory(registryPath: string, cycle: LastCycle & { binding: Binding }): Promise<void> {
  const kept = await readCycleHistory(registryPath, cycle.binding).catch(() => []);
  const cycles = [...kept.filter((c) => c.cycle < cycle.cycle), { ...cycle, error: cycle.error === null ? null : redactText(cycle.error) }].slice(-HISTORY_CYCLES);
  await writeFileAtomic(cycleHistoryPath(registryPath), `${JSON.stringify({ version: 1, cycles })}\n`);
}
