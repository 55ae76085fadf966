// @ferry/prisma: the database layer shared by the control plane and the CLI.
export {
  type Db,
  type OpenDatabase,
  type OpenDatabaseOptions,
  openDatabase,
  type Provider,
  providerOf,
  SQLITE_BUSY_TIMEOUT_MS,
  sqliteFilePath,
} from "./database.ts";
export {
  checksumOf,
  MigrationError,
  type MigrationFile,
  type MigrationResult,
  type MigrationTarget,
  migrate,
  migrationsDirectory,
  readMigrations,
} from "./migrate.ts";
export {
  allIn,
  attachSql,
  inList,
  type Sql,
  type SqlQueries,
  type SqlRow,
  type SqlScalar,
  type SqlValue,
  sqlOf,
} from "./sql.ts";
