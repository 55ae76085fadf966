-- CreateTable
CREATE TABLE "Backfill" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "workspaceId" TEXT NOT NULL,
    "deploymentId" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "cron" TEXT,
    "timezone" TEXT NOT NULL DEFAULT 'UTC',
    "intervalSeconds" INTEGER,
    "anchor" DATETIME,
    "rangeStart" DATETIME NOT NULL,
    "rangeEnd" DATETIME NOT NULL,
    "parametersJson" TEXT NOT NULL DEFAULT '{}',
    "maxActive" INTEGER NOT NULL DEFAULT 10,
    "reprocess" TEXT NOT NULL DEFAULT 'none',
    "backwards" BOOLEAN NOT NULL DEFAULT false,
    "status" TEXT NOT NULL DEFAULT 'RUNNING',
    "total" INTEGER NOT NULL,
    "skipped" INTEGER NOT NULL DEFAULT 0,
    "cursor" DATETIME,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "Backfill_deploymentId_fkey" FOREIGN KEY ("deploymentId") REFERENCES "Deployment" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- AlterTable
-- (a named key in the column definition: the table is not rebuilt, so this stays cheap on big databases)
ALTER TABLE "FlowRun" ADD COLUMN "backfillId" TEXT CONSTRAINT "FlowRun_backfillId_fkey" REFERENCES "Backfill" ("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- CreateIndex
CREATE INDEX "Backfill_workspaceId_idx" ON "Backfill"("workspaceId");

-- CreateIndex
CREATE INDEX "Backfill_status_idx" ON "Backfill"("status");

-- CreateIndex
CREATE UNIQUE INDEX "FlowRun_backfillId_scheduledFor_key" ON "FlowRun"("backfillId", "scheduledFor");

-- CreateIndex
CREATE INDEX "FlowRun_backfillId_stateType_idx" ON "FlowRun"("backfillId", "stateType");

-- CreateIndex
CREATE INDEX "FlowRun_deploymentId_scheduledFor_idx" ON "FlowRun"("deploymentId", "scheduledFor");
