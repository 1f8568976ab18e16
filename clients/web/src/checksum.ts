// SHA-256 of a file in the browser, read a slice at a time so that memory stays flat
// (crypto.subtle.digest wants the whole file in one buffer).
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

const SLICE = 4 << 20;

/** Hex SHA-256 of `file`; `progress` hears how many bytes are hashed. Rejects with an
 * AbortError once `signal` aborts. */
export async function fileSha256(
  file: Blob,
  progress: (hashed: number) => void,
  signal: AbortSignal,
): Promise<string> {
  const hash = sha256.create();
  for (let at = 0; at < file.size; at += SLICE) {
    signal.throwIfAborted();
    const end = Math.min(at + SLICE, file.size);
    hash.update(new Uint8Array(await file.slice(at, end).arrayBuffer()));
    progress(end);
  }
  return bytesToHex(hash.digest());
}
