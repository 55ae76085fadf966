-- Agent ids are scoped by workspace and bound to the token that registered them: the id an
-- agent chose moves to "externalId" (unique per workspace); "id" stays the control plane's key,
-- so existing rows keep theirs and FlowRun."agentId" still refers to them. "tokenId" becomes
-- nullable (an admin's release).

-- DropIndex
DROP INDEX "Agent_workspaceId_idx";

-- AlterTable
ALTER TABLE "Agent" ADD COLUMN "externalId" TEXT;
UPDATE "Agent" SET "externalId" = "id";
ALTER TABLE "Agent" ALTER COLUMN "externalId" SET NOT NULL,
ALTER COLUMN "tokenId" DROP NOT NULL;

-- CreateIndex
CREATE UNIQUE INDEX "Agent_workspaceId_externalId_key" ON "Agent"("workspaceId", "externalId");
