/**
 * Many-databases mode: a connection refuses a server message longer than the longest
 * string Node.js can make. node-postgres turns every text field into a string inside its
 * socket's 'data' listener; a field longer than that (a 600-million-character column from
 * a tenant's replaced function) throws ERR_STRING_TOO_LONG there, out of reach of any
 * caller, and ends the process. No field is longer than its message, so a message within
 * the limit can never do that. The guard reads only the 5-byte message headers as the
 * bytes pass (it buffers nothing), and closes the connection at the header of a message
 * over the limit, before node-postgres starts collecting it: the call on it fails with
 * ResponseTooLargeError.
 */
import { constants } from 'node:buffer';
import type { Duplex } from 'node:stream';

import type pg from 'pg';

import { ResponseTooLargeError } from '../errors.js';

/** Longest message accepted: the longest string Node.js can make (one byte is at least one character). */
export const MAX_MESSAGE_BYTES = constants.MAX_STRING_LENGTH;

/** Walks the backend message framing (1 type byte, a 4-byte length that counts itself, the body). */
export class FrameScanner {
  private readonly header = Buffer.alloc(5);
  private headerBytes = 0;
  private bodyLeft = 0;

  constructor(private readonly maxBytes: number) {}

  /** Feeds the next bytes; returns the length of a message over the limit, or null. */
  scan(chunk: Buffer): number | null {
    let i = 0;
    while (i < chunk.length) {
      if (this.bodyLeft > 0) {
        const n = Math.min(this.bodyLeft, chunk.length - i);
        this.bodyLeft -= n;
        i += n;
        continue;
      }
      const n = Math.min(5 - this.headerBytes, chunk.length - i);
      chunk.copy(this.header, this.headerBytes, i, i + n);
      this.headerBytes += n;
      i += n;
      if (this.headerBytes === 5) {
        const length = this.header.readUInt32BE(1);
        if (length > this.maxBytes) return length;
        this.headerBytes = 0;
        // A length under 4 is a protocol error, which node-postgres reports itself.
        this.bodyLeft = Math.max(0, length - 4);
      }
    }
    return null;
  }
}

/** node-postgres' Connection, as far as the guard uses it (not public API; see guardMessageSize). */
interface ConnectionInternals {
  attachListeners?: (stream: Duplex) => void;
}

/**
 * Puts the guard on a client not yet connected. node-postgres attaches its protocol parser
 * to the socket (or, with TLS, to the decrypted stream) in Connection.attachListeners;
 * the guard wraps that method, so it sees exactly the bytes the parser would, and hands
 * them on unchanged. Returns false when this node-postgres has no such method (nothing
 * guarded).
 */
export function guardMessageSize(client: pg.Client, maxBytes = MAX_MESSAGE_BYTES): boolean {
  const connection = (client as unknown as { connection?: ConnectionInternals }).connection;
  const attach = connection?.attachListeners;
  if (!connection || typeof attach !== 'function') return false;
  connection.attachListeners = (stream: Duplex) => {
    attach.call(connection, stream);
    const parsers = stream.listeners('data') as ((chunk: Buffer) => void)[];
    stream.removeAllListeners('data');
    const frames = new FrameScanner(maxBytes);
    stream.on('data', (chunk: Buffer) => {
      const tooLong = frames.scan(chunk);
      if (tooLong !== null) {
        stream.destroy(
          new ResponseTooLargeError(
            `the database sent a message of ${tooLong} bytes, more than the ${maxBytes} a Node.js string can hold: the connection was closed`,
          ),
        );
        return;
      }
      for (const parse of parsers) parse.call(stream, chunk);
    });
  };
  return true;
}
