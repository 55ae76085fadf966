-- AlterTable
ALTER TABLE "Trigger" ADD COLUMN "eventName" TEXT;

-- CreateIndex
CREATE INDEX "Trigger_eventName_idx" ON "Trigger"("eventName");
