-- CreateTable
CREATE TABLE "Schedule" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "workspaceId" TEXT NOT NULL,
    "deploymentId" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "cron" TEXT,
    "timezone" TEXT NOT NULL DEFAULT 'UTC',
    "intervalSeconds" INTEGER,
    "anchor" DATETIME,
    "parametersJson" TEXT NOT NULL DEFAULT '{}',
    "active" BOOLEAN NOT NULL DEFAULT true,
    "catchup" TEXT NOT NULL DEFAULT 'LATEST',
    "graceSeconds" INTEGER NOT NULL DEFAULT 60,
    "source" TEXT NOT NULL DEFAULT 'user',
    "lastSlotAt" DATETIME,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "Schedule_deploymentId_fkey" FOREIGN KEY ("deploymentId") REFERENCES "Deployment" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- AlterTable
-- (a named key in the column definition: the table is not rebuilt, so this stays cheap on big databases)
ALTER TABLE "FlowRun" ADD COLUMN "scheduleId" TEXT CONSTRAINT "FlowRun_scheduleId_fkey" REFERENCES "Schedule" ("id") ON DELETE SET NULL ON UPDATE CASCADE;
ALTER TABLE "FlowRun" ADD COLUMN "scheduledFor" DATETIME;
ALTER TABLE "FlowRun" ADD COLUMN "dataIntervalStart" DATETIME;
ALTER TABLE "FlowRun" ADD COLUMN "dataIntervalEnd" DATETIME;

-- CreateIndex
CREATE INDEX "Schedule_workspaceId_idx" ON "Schedule"("workspaceId");

-- CreateIndex
CREATE INDEX "Schedule_deploymentId_idx" ON "Schedule"("deploymentId");

-- CreateIndex
CREATE UNIQUE INDEX "FlowRun_scheduleId_scheduledFor_key" ON "FlowRun"("scheduleId", "scheduledFor");
