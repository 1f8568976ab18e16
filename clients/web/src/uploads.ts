// Browser uploads, one file each: a token from RequestUploadToken, then an XHR PUT to
// /storage/v1/upload with its progress (XHR rather than fetch: only XHR reports upload
// progress). A PUT that breaks (network error, abort, 5xx) leaves on the proxy what
// arrived, so the row offers Resume: HEAD on the upload URL answers the committed
// Upload-Offset (a fresh token when the proxy refuses the old one: 401), then the rest,
// file.slice(offset), goes with Upload-Offset and Upload-Length. Checksummed end to end:
// the file's SHA-256 is computed first (checksum.ts) and sent as X-Bai-Sha256 with every
// PUT, so the proxy refuses to commit bytes that differ (CHECKSUM_MISMATCH) and the
// reply's sha256 is checked too. The token is asked after hashing: a big file takes a
// while, and tokens are short-lived.
import type { Client } from "@connectrpc/connect";
import { apiBase, describeError, isUnauthenticated, type ApiError } from "./api";
import { fileSha256 } from "./checksum";
import { h } from "./dom";
import { bytes } from "./format";
import type { VFolder, VFolderService } from "./gen/bai/api/manager/v1/vfolder_pb";
import { errorBox } from "./table";

/** Where the gateway serves the storage proxy's plain-HTTP transfers. */
export const transferUrl = (op: "upload" | "download", token: string): string =>
  `${apiBase()}/storage/v1/${op}?token=${encodeURIComponent(token)}`;

interface UploadReply {
  committed_size: number;
  total_size: number;
  complete: boolean;
  sha256: string;
}

/** A failed HTTP transfer, its error read as the gRPC errors are; `resumable` when the
 * bytes that arrived stay on the proxy and the rest can follow. */
export class TransferError extends Error {
  constructor(
    readonly error: ApiError,
    readonly resumable = false,
  ) {
    super(error.message);
  }
}

export const localError = (code: string, message: string, reason = ""): ApiError => ({
  code,
  reason,
  message,
  metadata: {},
  violations: [],
});

/** The proxy's JSON error body (or Envoy's plain text, e.g. when the proxy is down). */
function httpError(status: number, body: string): ApiError {
  try {
    const e = JSON.parse(body) as Partial<Omit<ApiError, "violations">> & {
      violations?: { field: string; description: string }[];
    };
    return {
      code: (e.code || `http_${status}`).toLowerCase(),
      reason: e.reason ?? "",
      message: e.message ?? "",
      metadata: e.metadata ?? {},
      violations: (e.violations ?? []).map((v) => `${v.field}: ${v.description}`),
    };
  } catch {
    return localError(`http_${status}`, body.slice(0, 200) || `HTTP ${status}`);
  }
}

/** A HEAD reply has no body: the proxy names the error in headers. */
const headError = (res: Response): ApiError =>
  localError(
    (res.headers.get("x-bai-error-code") || `http_${res.status}`).toLowerCase(),
    `HTTP ${res.status} asking the proxy how much of the file it has`,
    res.headers.get("x-bai-error-reason") ?? "",
  );

const connectionLost = (): TransferError =>
  new TransferError(localError("unavailable", "the connection to the storage proxy failed"), true);

/** One file's upload, and its line in the uploads list: a progress bar, how it ended,
 * Cancel while it runs and Resume after it broke. */
export class FileUpload {
  readonly root: HTMLElement;
  private readonly bar: HTMLProgressElement;
  private readonly state = h("span", { class: "upload-state muted" }, "waiting");
  private readonly cancelBtn = h("button", { type: "button", class: "cancel", hidden: "" }, "Cancel");
  private readonly resumeBtn = h("button", { type: "button", class: "resume", hidden: "" }, "Resume");
  private token = "";
  private sha256 = "";
  private xhr: XMLHttpRequest | null = null;
  private hashing: AbortController | null = null;

  constructor(
    private readonly client: Client<typeof VFolderService>,
    private readonly folder: VFolder,
    readonly path: string,
    readonly file: File,
    private readonly onExpired: () => void,
    private readonly onResumed: () => void, // a resumed upload completed
  ) {
    this.bar = h("progress", { max: String(Math.max(file.size, 1)), value: "0" });
    this.root = h(
      "li",
      { "data-file": file.name },
      h("span", {}, file.name),
      this.bar,
      this.state,
      this.cancelBtn,
      this.resumeBtn,
    );
    this.root.dataset.state = "waiting";
    this.cancelBtn.addEventListener("click", () => {
      this.hashing?.abort();
      this.xhr?.abort();
    });
    this.resumeBtn.addEventListener("click", () => void this.resume());
  }

  /** The first try: a token, then the whole file. */
  start(): Promise<boolean> {
    return this.attempt(async () => {
      this.token = await this.newToken();
      return 0;
    });
  }

  /** Another try from what the proxy kept. */
  async resume(): Promise<void> {
    if (await this.attempt(() => this.committedOffset())) this.onResumed();
  }

  /** True when the whole file is on the proxy. */
  private async attempt(from: () => Promise<number>): Promise<boolean> {
    const size = this.file.size;
    this.resumeBtn.hidden = true;
    try {
      await this.checksum();
      const offset = await from();
      this.progress(offset);
      this.cancelBtn.hidden = false;
      const reply = await this.put(offset);
      if (reply.complete && reply.committed_size === size && reply.sha256 === this.sha256) {
        this.done(size);
        return true;
      }
      const kept = `the proxy kept ${reply.committed_size} of ${size} bytes, sha256 ${reply.sha256}`;
      this.fail(localError("data_loss", `${kept}; this file's is ${this.sha256}`), true);
    } catch (err) {
      if (isUnauthenticated(err)) {
        this.onExpired();
        return false;
      }
      if (err instanceof TransferError) {
        this.fail(err.error, err.resumable);
      } else {
        // The manager out of reach for a token: a later try may get one (HEAD's 401 asks).
        const e = describeError(err);
        this.fail(e, e.code === "unavailable" || e.code === "deadline_exceeded");
      }
    } finally {
      this.cancelBtn.hidden = true;
      this.xhr = null;
    }
    return false;
  }

  /** The file's SHA-256, computed once (Cancel stops it; Resume computes it again). */
  private async checksum(): Promise<void> {
    if (this.sha256) return;
    const size = this.file.size;
    this.hashing = new AbortController();
    this.cancelBtn.hidden = false;
    this.root.dataset.state = "checksumming";
    const hashed = (n: number): void => {
      this.state.textContent = `checksumming, ${bytes(n)} of ${bytes(size)}`;
    };
    hashed(0);
    try {
      this.sha256 = await fileSha256(this.file, hashed, this.hashing.signal);
    } catch (err) {
      if (this.hashing.signal.aborted) {
        throw new TransferError(localError("cancelled", "the checksum was cancelled"), true);
      }
      throw new TransferError(localError("unavailable", `the file could not be read: ${String(err)}`), true);
    } finally {
      this.hashing = null;
    }
  }

  private async newToken(): Promise<string> {
    const { ticket } = await this.client.requestUploadToken({
      vfolderId: this.folder.id,
      path: this.path,
      size: BigInt(this.file.size),
    });
    if (!ticket) throw new TransferError(localError("internal", "the manager sent no transfer ticket"));
    return ticket.token;
  }

  private head(): Promise<Response> {
    return fetch(transferUrl("upload", this.token), { method: "HEAD", cache: "no-store" }).catch(() => {
      throw connectionLost();
    });
  }

  /** How many bytes the proxy has; a token it refuses (expired) is replaced once. */
  private async committedOffset(): Promise<number> {
    this.state.textContent = "asking the proxy how much it has…";
    let res = await this.head();
    if (res.status === 401) {
      this.token = await this.newToken();
      res = await this.head();
    }
    if (!res.ok) throw new TransferError(headError(res), res.status >= 500);
    const offset = Number(res.headers.get("upload-offset") ?? "0");
    this.root.dataset.resumedFrom = String(offset);
    return offset;
  }

  /** PUT bytes [offset, size) of the file. */
  private put(offset: number): Promise<UploadReply> {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      xhr.open("PUT", transferUrl("upload", this.token));
      xhr.setRequestHeader("Upload-Length", String(this.file.size));
      xhr.setRequestHeader("X-Bai-Sha256", this.sha256);
      if (offset) xhr.setRequestHeader("Upload-Offset", String(offset));
      xhr.upload.onprogress = (ev) => this.progress(offset + ev.loaded);
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) resolve(JSON.parse(xhr.responseText) as UploadReply);
        else reject(new TransferError(httpError(xhr.status, xhr.responseText), xhr.status >= 500));
      };
      xhr.onerror = () => reject(connectionLost());
      xhr.onabort = () => reject(new TransferError(localError("cancelled", "the upload was cancelled"), true));
      xhr.send(offset ? this.file.slice(offset) : this.file);
    });
  }

  private progress(sent: number): void {
    this.root.dataset.state = "uploading";
    this.bar.value = sent;
    this.state.textContent = `${bytes(sent)} of ${bytes(this.file.size)}`;
  }

  private done(size: number): void {
    this.root.dataset.state = "done";
    this.bar.value = this.bar.max;
    this.state.textContent = `done, ${bytes(size)}`;
  }

  private fail(e: ApiError, resumable: boolean): void {
    this.root.dataset.state = "failed";
    this.state.replaceChildren(errorBox(e));
    this.resumeBtn.hidden = !resumable;
  }
}
