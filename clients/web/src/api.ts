// grpc-web clients for the manager, reached through the Envoy gateway.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AuthService } from "./gen/bai/api/manager/v1/auth_pb";
import { BackgroundTaskService, type BackgroundTask } from "./gen/bai/api/manager/v1/bgtask_pb";
import { DomainService } from "./gen/bai/api/manager/v1/domain_pb";
import { ImageService } from "./gen/bai/api/manager/v1/image_pb";
import { ProjectService } from "./gen/bai/api/manager/v1/project_pb";
import { ScalingGroupService } from "./gen/bai/api/manager/v1/scaling_group_pb";
import { SessionService } from "./gen/bai/api/manager/v1/session_pb";
import { UserService } from "./gen/bai/api/manager/v1/user_pb";
import { VFolderService } from "./gen/bai/api/manager/v1/vfolder_pb";
import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb";

const TOKEN_KEY = "bai.token";

/** Where the gateway is: `?api=URL`, else <meta name="bai-api-base">, else this page's origin. */
export function apiBase(): string {
  const fromQuery = new URLSearchParams(location.search).get("api");
  const fromMeta = document.querySelector<HTMLMetaElement>('meta[name="bai-api-base"]')?.content;
  return (fromQuery || fromMeta || location.origin).replace(/\/+$/, "");
}

export const token = {
  get: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  set: (t: string): void => sessionStorage.setItem(TOKEN_KEY, t),
  clear: (): void => sessionStorage.removeItem(TOKEN_KEY),
};

// Every call carries the bearer token from Login, when there is one.
const bearer: Interceptor = (next) => async (req) => {
  const t = token.get();
  if (t) req.header.set("authorization", `Bearer ${t}`);
  return next(req);
};

const transport = createGrpcWebTransport({
  baseUrl: apiBase(),
  interceptors: [bearer],
  defaultTimeoutMs: 15_000,
});

export const api: {
  auth: Client<typeof AuthService>;
  domains: Client<typeof DomainService>;
  projects: Client<typeof ProjectService>;
  users: Client<typeof UserService>;
  sessions: Client<typeof SessionService>;
  images: Client<typeof ImageService>;
  scalingGroups: Client<typeof ScalingGroupService>;
  tasks: Client<typeof BackgroundTaskService>;
  vfolders: Client<typeof VFolderService>;
} = {
  auth: createClient(AuthService, transport),
  domains: createClient(DomainService, transport),
  projects: createClient(ProjectService, transport),
  users: createClient(UserService, transport),
  sessions: createClient(SessionService, transport),
  images: createClient(ImageService, transport),
  scalingGroups: createClient(ScalingGroupService, transport),
  tasks: createClient(BackgroundTaskService, transport),
  vfolders: createClient(VFolderService, transport),
};

/** Call options for a server stream: no deadline (it lives as long as the page wants it). */
export const endless = (signal: AbortSignal): { signal: AbortSignal; timeoutMs: number } => ({
  signal,
  timeoutMs: 0,
});

/** A background task's last state, `seen` told each one on the way (WatchTask ends
 * after the terminal event). */
export async function followTask(
  taskId: string,
  signal: AbortSignal,
  seen: (task: BackgroundTask) => void = () => {},
): Promise<BackgroundTask | null> {
  let last: BackgroundTask | null = null;
  for await (const { task } of api.tasks.watchTask({ taskId }, endless(signal))) {
    if (task) seen((last = task));
  }
  return last;
}

export interface ApiError {
  code: string; // e.g. "unauthenticated"
  reason: string; // google.rpc.ErrorInfo.reason, "" when the server sent none
  message: string;
  metadata: Record<string, string>;
  violations: string[]; // google.rpc.BadRequest, "field: description"
}

/** Code, ErrorInfo reason and message of any error thrown by a call. */
export function describeError(err: unknown): ApiError {
  const e = ConnectError.from(err);
  const [info] = e.findDetails(ErrorInfoSchema);
  const violations = e
    .findDetails(BadRequestSchema)
    .flatMap((b) => b.fieldViolations.map((v) => `${v.field}: ${v.description}`));
  return {
    code: codeName(e.code),
    reason: info?.reason ?? "",
    message: e.rawMessage,
    metadata: info?.metadata ?? {},
    violations,
  };
}

/** True when the error means our token is no good (log in again). */
export function isUnauthenticated(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Unauthenticated;
}

/** True when the call was cancelled by our own AbortSignal. */
export function isCancelled(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Canceled;
}

function codeName(code: Code): string {
  // Code.PermissionDenied -> "permission_denied" (the gRPC spelling, lower case).
  return (Code[code] ?? String(code)).replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}
