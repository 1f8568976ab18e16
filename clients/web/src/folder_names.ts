// How folder enums read on the page: lower case with dashes, as Backend.AI names them.
import { enumName } from "./format";
import { FolderUsageMode, MountPermission } from "./gen/bai/api/common/v1/storage_pb";
import { FolderInvitationStatus, FolderOwnershipType, FolderStatus } from "./gen/bai/api/manager/v1/vfolder_pb";

const lower = (e: Record<number, string>, v: number): string =>
  enumName(e, v).toLowerCase().replace(/_/g, "-");
export const usageMode = (m: FolderUsageMode): string => lower(FolderUsageMode, m);
export const permission = (p: MountPermission): string => lower(MountPermission, p);
export const ownership = (o: FolderOwnershipType): string => lower(FolderOwnershipType, o);
export const folderStatus = (s: FolderStatus): string => lower(FolderStatus, s);
export const invitationStatus = (s: FolderInvitationStatus): string => lower(FolderInvitationStatus, s);

/** A button that a table's delegated click handler finds by its data attributes. */
export const actionAttrs = (kind: string, action: string, id: string): Record<string, string> => ({
  type: "button",
  [`data-${kind}-action`]: action,
  [`data-${kind}-id`]: id,
});
