// The bytes of Produce requests each client connection has in progress on this broker: being
// appended, or waiting in the produce purgatory for acks=all. Kafka bounds a connection by
// reading one request at a time from it (muting the socket); gRPC multiplexes many calls on one
// HTTP/2 connection, so the broker counts instead. The transport bounds what a connection can
// have received but not yet answered (the listener's max concurrent streams times its largest
// message); this bound keeps one busy connection from filling the purgatory and the log's write
// queue for everyone else.

import { ErrorCode, WeirError, assert } from '@weir/protocol';

export class InFlightBytes {
  private readonly bytesByConnection = new Map<string, number>();

  constructor(readonly maxBytesPerConnection: number) {
    assert(
      Number.isSafeInteger(maxBytesPerConnection) && maxBytesPerConnection > 0,
      () => `maxBytesPerConnection must be a positive integer, got ${maxBytesPerConnection}`,
    );
  }

  /** What `connection` has in progress now. */
  bytesOf(connection: string): number {
    return this.bytesByConnection.get(connection) ?? 0;
  }

  /**
   * Counts a request's bytes against its connection and returns the function that releases
   * them (call it exactly once, when the request is answered). A request that would take the
   * connection past the limit is refused with THROTTLING_QUOTA_EXCEEDED, which clients retry
   * after a back-off — except when the connection has nothing in progress, so that a request
   * larger than the limit still gets through on its own rather than never.
   */
  acquire(connection: string, bytes: number): () => void {
    const current = this.bytesOf(connection);
    if (current > 0 && current + bytes > this.maxBytesPerConnection) {
      throw new WeirError(
        ErrorCode.THROTTLING_QUOTA_EXCEEDED,
        `connection ${connection} has ${current} bytes of Produce requests in progress; ${bytes} more would pass the broker's max.in.flight.bytes.per.connection=${this.maxBytesPerConnection}; retry after a back-off`,
      );
    }
    this.bytesByConnection.set(connection, current + bytes);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = this.bytesOf(connection) - bytes;
      assert(left >= 0, () => `connection ${connection} released more bytes than it acquired`);
      if (left === 0) this.bytesByConnection.delete(connection);
      else this.bytesByConnection.set(connection, left);
    };
  }
}
