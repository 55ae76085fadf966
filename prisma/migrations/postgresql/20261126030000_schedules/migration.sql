-- AlterTable
ALTER TABLE "FlowRun" ADD COLUMN     "dataIntervalEnd" TIMESTAMP(3),
ADD COLUMN     "dataIntervalStart" TIMESTAMP(3),
ADD COLUMN     "scheduleId" TEXT,
ADD COLUMN     "scheduledFor" TIMESTAMP(3);

-- CreateTable
CREATE TABLE "Schedule" (
    "id" TEXT NOT NULL,
    "workspaceId" TEXT NOT NULL,
    "deploymentId" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "cron" TEXT,
    "timezone" TEXT NOT NULL DEFAULT 'UTC',
    "intervalSeconds" INTEGER,
    "anchor" TIMESTAMP(3),
    "parametersJson" TEXT NOT NULL DEFAULT '{}',
    "active" BOOLEAN NOT NULL DEFAULT true,
    "catchup" TEXT NOT NULL DEFAULT 'LATEST',
    "graceSeconds" INTEGER NOT NULL DEFAULT 60,
    "source" TEXT NOT NULL DEFAULT 'user',
    "lastSlotAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Schedule_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Schedule_workspaceId_idx" ON "Schedule"("workspaceId");

-- CreateIndex
CREATE INDEX "Schedule_deploymentId_idx" ON "Schedule"("deploymentId");

-- CreateIndex
CREATE UNIQUE INDEX "FlowRun_scheduleId_scheduledFor_key" ON "FlowRun"("scheduleId", "scheduledFor");

-- AddForeignKey
ALTER TABLE "Schedule" ADD CONSTRAINT "Schedule_deploymentId_fkey" FOREIGN KEY ("deploymentId") REFERENCES "Deployment"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "FlowRun" ADD CONSTRAINT "FlowRun_scheduleId_fkey" FOREIGN KEY ("scheduleId") REFERENCES "Schedule"("id") ON DELETE SET NULL ON UPDATE CASCADE;
