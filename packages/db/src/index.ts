/** @medshare/db: one database interface over embedded PGlite and PostgreSQL, plus per-component migrations. */
export { openDatabase, type Database, type OpenDatabaseOptions, type Queryable, type QueryOptions, type QueryResult } from './database.ts';
export { insertMany } from './insert-many.ts';
export { migrate, schemaVersion, type Migration } from './migrations.ts';
export { GroupCommit } from './group-commit.ts';
export { openTestDatabases, type TestDatabase } from './testing.ts';
export {
  KEK_ENV,
  keyEncryptionKeyFromBytes,
  loadKeyEncryptionKey,
  randomKeyEncryptionKey,
  type KeyEncryptionKey,
  type LoadKeyEncryptionKeyOptions,
} from './key-encryption.ts';
