-- Agent ids are scoped by workspace and bound to the token that registered them: the id an
-- agent chose moves to "externalId" (unique per workspace); "id" stays the control plane's key,
-- so existing rows keep theirs and FlowRun."agentId" still refers to them. "tokenId" becomes
-- nullable (an admin's release).

-- RedefineTables
CREATE TABLE "new_Agent" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "workspaceId" TEXT NOT NULL,
    "externalId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "tokenId" TEXT,
    "poolsJson" TEXT NOT NULL,
    "labelsJson" TEXT NOT NULL,
    "capacity" INTEGER NOT NULL,
    "version" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "connectedAt" DATETIME,
    "lastHeartbeatAt" DATETIME,
    "disconnectedAt" DATETIME,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "Agent_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
INSERT INTO "new_Agent" ("id", "workspaceId", "externalId", "name", "tokenId", "poolsJson", "labelsJson", "capacity", "version", "status", "connectedAt", "lastHeartbeatAt", "disconnectedAt", "createdAt")
SELECT "id", "workspaceId", "id", "name", "tokenId", "poolsJson", "labelsJson", "capacity", "version", "status", "connectedAt", "lastHeartbeatAt", "disconnectedAt", "createdAt" FROM "Agent";
DROP TABLE "Agent";
ALTER TABLE "new_Agent" RENAME TO "Agent";

-- CreateIndex
CREATE UNIQUE INDEX "Agent_workspaceId_externalId_key" ON "Agent"("workspaceId", "externalId");
