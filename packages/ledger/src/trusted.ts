/**
 * The last checkpoint a log signed, kept *outside* its database (docs/ledger.md §Trust model). Whoever can edit
 * the database can rewrite entries and delete later checkpoints; they cannot roll this copy back as well unless
 * they also hold the service's data directory. The log checks its tree against it on open and before every
 * signature (log.ts), and advances it after every commit.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { MalformedInputError } from '@medshare/crypto';
import { parseCheckpoint, parseNote } from './note.ts';

/** Where a log keeps its last signed checkpoint outside the database. */
export interface TrustedCheckpoint {
  /** The last saved checkpoint note, or undefined before the first. */
  load(): Promise<string | undefined>;
  /** Replaces the saved note with `note` when it is of a larger tree (never moves back). */
  save(note: string): Promise<void>;
}

/** A checkpoint note in a file, replaced atomically (write then rename) so a crash leaves the old or the new one. */
export class CheckpointFile implements TrustedCheckpoint {
  constructor(readonly path: string) {}

  /** @throws MalformedInputError when the file exists but holds no checkpoint note. */
  async load(): Promise<string | undefined> {
    let note: string;
    try {
      note = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      parseCheckpoint(parseNote(note).body);
    } catch {
      throw new MalformedInputError(`${this.path} does not hold a checkpoint note`);
    }
    return note;
  }

  async save(note: string): Promise<void> {
    const size = parseCheckpoint(parseNote(note).body).size;
    // Read again each time: another process of the same service may have moved it further.
    const saved = await this.load();
    if (saved !== undefined && parseCheckpoint(parseNote(saved).body).size >= size) return;
    const temporary = `${this.path}.${process.pid}.tmp`;
    await writeFile(temporary, note, { mode: 0o644 });
    await rename(temporary, this.path);
  }
}
