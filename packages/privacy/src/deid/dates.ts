/**
 * Date handling for de-identification: date shifting and partial (year-only) redaction of FHIR
 * `date`, `dateTime` and `instant` values, and the HIPAA Safe Harbor age rule
 * (45 CFR 164.514(b)(2)(i)(C): ages over 89, and dates that indicate them, are removed).
 *
 * The default shift reproduces Microsoft's anonymizer: offset = fold over the UTF-8 bytes of
 * (prefix + dateShiftKey) with o = (o*131 + b) mod 101, minus 50 days. That fold is not a keyed
 * PRF: 101 possible offsets, and one known (original, shifted) date pair reveals the offset of a
 * patient. The `hmac` variant derives the offset from HMAC-SHA256(dateShiftKey, prefix) (RFC 2104)
 * so offsets are unpredictable without the key; it is the recommended choice for new data.
 */
import { createHmac } from 'node:crypto';

const SHIFT_RANGE = 50;
const AGE_THRESHOLD = 89;
const TIME = /T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?$/;

/**
 * The date-shift offset in days for a prefix (resource id, file, folder or patient id): in
 * [-50, 50] for `fold` (the reference tool's, which can be 0), in [-50, -1] ∪ [1, 50] for `hmac`
 * (never 0, so a shifted date never equals the original).
 */
export function dateShiftOffset(prefix: string, key: string, algorithm: 'fold' | 'hmac' = 'fold'): number {
  if (algorithm === 'hmac') {
    const mac = createHmac('sha256', key).update(prefix, 'utf8').digest();
    const draw = mac.readUInt32BE(0) % (2 * SHIFT_RANGE);
    return draw < SHIFT_RANGE ? draw - SHIFT_RANGE : draw - SHIFT_RANGE + 1;
  }
  let offset = 0;
  for (const byte of Buffer.from(prefix + key, 'utf8')) offset = (offset * 131 + byte) % (2 * SHIFT_RANGE + 1);
  return offset - SHIFT_RANGE;
}

/** True when a date (possibly partial) lies more than 89 years before `now`: it indicates an age over 89. */
export function indicatesAgeOver89(value: string, now = today()): boolean {
  const packed = datePacked(value);
  return packed >= 0 && overAgeLimit(packed, now);
}

/** The current time as a Date made once per UTC day (the age rule reads only the date), not per value. */
function today(): Date {
  const now = Date.now();
  if (current === undefined || now < current.start || now >= current.start + DAY) {
    const date = new Date(now);
    current = { date, start: Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()) };
  }
  return current.date;
}

const DAY = 86_400_000;
let current: { date: Date; start: number } | undefined;

/**
 * What the pattern `^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?` reads of a value, packed in one small
 * integer as year << 14 | (month + 1) << 7 | (day + 1), a part 0 when absent (a year is below 2^14,
 * a month or day plus one below 2^7); -1 when it does not match: no match array, strings, object
 * or heap number per value (redaction reads thousands of dates).
 */
function datePacked(value: string): number {
  if (!(digit(value, 0) && digit(value, 1) && digit(value, 2) && digit(value, 3))) return -1;
  const year = number(value, 0, 4) << 14;
  if (!(value.charCodeAt(4) === 45 /* - */ && digit(value, 5) && digit(value, 6))) return year;
  const month = (number(value, 5, 7) + 1) << 7;
  if (!(value.charCodeAt(7) === 45 && digit(value, 8) && digit(value, 9))) return year | month;
  return year | month | (number(value, 8, 10) + 1);
}

const yearOf = (packed: number): number => packed >> 14;
/** A part of a packed date (shift 7: the month; 0: the day), undefined when absent. */
function partOf(packed: number, shift: number): number | undefined {
  const stored = (packed >> shift) & 0x7f;
  return stored === 0 ? undefined : stored - 1;
}

function digit(value: string, at: number): boolean {
  const c = value.charCodeAt(at);
  return c >= 48 && c <= 57;
}

function number(value: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) n = n * 10 + value.charCodeAt(i) - 48;
  return n;
}

/** Whether a packed date (an absent month or day read as 1) lies more than 89 years before `now`. */
function overAgeLimit(packed: number, now: Date): boolean {
  const month = partOf(packed, 7) ?? 1;
  const day = partOf(packed, 0) ?? 1;
  const nowMonth = now.getUTCMonth() + 1;
  const beforeBirthday = nowMonth < month || (nowMonth === month && now.getUTCDate() < day);
  return now.getUTCFullYear() - yearOf(packed) - (beforeBirthday ? 1 : 0) > AGE_THRESHOLD;
}

/**
 * Partial redaction of a date: its year, or `undefined` (remove) when the date is unparseable
 * or indicates an age over 89.
 */
export function partialDate(value: string, now = today()): string | undefined {
  const packed = datePacked(value);
  if (packed < 0 || overAgeLimit(packed, now)) return undefined;
  // One string per year: a record set's thousands of dates share a few dozen years (a slice of four characters is a copy).
  return (YEARS[yearOf(packed)] ??= value.slice(0, 4));
}

/** The four-digit year strings made so far, by year (datePacked reads four digits: 0-9999). */
const YEARS: (string | undefined)[] = new Array<string | undefined>(10_000);

/**
 * Shifts a full date by `offsetDays`. A dateTime keeps its time zone and has its time set to
 * 00:00:00. Returns `undefined` when the value has no day (partial) or indicates an age over 89:
 * the caller then redacts it, as the reference tool does.
 */
export function shiftDate(value: string, offsetDays: number, now = today()): string | undefined {
  const packed = datePacked(value);
  const day = partOf(packed, 0);
  if (packed < 0 || day === undefined || overAgeLimit(packed, now)) return undefined;
  const shifted = new Date(Date.UTC(yearOf(packed), partOf(packed, 7)! - 1, day + offsetDays));
  const date = shifted.toISOString().slice(0, 10);
  const time = TIME.exec(value);
  if (!time) return date;
  const fraction = time[4] ? '.' + '0'.repeat(time[4].length - 1) : '';
  return `${date}T00:00:00${fraction}${time[5] ?? ''}`;
}
