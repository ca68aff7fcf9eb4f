// A minimal protobuf writer/reader for the one wire format the collector encodes itself:
// Prometheus remote-write (the reader serves tests that check what was sent). Grows one buffer; nested messages
// are written into a child writer and copied once (they are small here).
export class PbWriter {
  buf: Buffer;
  pos = 0;

  constructor(initial = 256) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const b = Buffer.allocUnsafe(size);
    this.buf.copy(b, 0, 0, this.pos);
    this.buf = b;
  }

  varint(v: number | bigint): this {
    this.ensure(10);
    if (typeof v === 'bigint' || v < 0 || v > 0xffffffff) {
      let x = BigInt.asUintN(64, BigInt(v));
      while (x >= 0x80n) {
        this.buf[this.pos++] = Number(x & 0x7fn) | 0x80;
        x >>= 7n;
      }
      this.buf[this.pos++] = Number(x);
      return this;
    }
    let x = v >>> 0;
    while (x >= 0x80) {
      this.buf[this.pos++] = (x & 0x7f) | 0x80;
      x >>>= 7;
    }
    this.buf[this.pos++] = x;
    return this;
  }

  tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }

  uint(field: number, v: number | bigint): this {
    return this.tag(field, 0).varint(v);
  }

  double(field: number, v: number): this {
    this.tag(field, 1);
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
    return this;
  }

  bytes(field: number, b: Uint8Array): this {
    this.tag(field, 2).varint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  string(field: number, s: string): this {
    const len = Buffer.byteLength(s);
    this.tag(field, 2).varint(len);
    this.ensure(len);
    this.buf.write(s, this.pos, len, 'utf8');
    this.pos += len;
    return this;
  }

  /** Writes a length-delimited sub-message built by `fn`. */
  message(field: number, fn: (w: PbWriter) => void): this {
    const w = new PbWriter(64);
    fn(w);
    return this.bytes(field, w.finish());
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

export class PbReader {
  pos = 0;
  constructor(readonly b: Uint8Array) {}
  more(): boolean {
    return this.pos < this.b.length;
  }
  varint(): number {
    let x = 0;
    let mul = 1;
    for (;;) {
      if (this.pos >= this.b.length) throw new Error('truncated varint');
      const c = this.b[this.pos++];
      x += (c & 0x7f) * mul;
      if (c < 0x80) return x;
      mul *= 128;
      if (mul > 2 ** 63) throw new Error('varint too long');
    }
  }
  tag(): [number, number] {
    const t = this.varint();
    return [Math.floor(t / 8), t & 7];
  }
  lenBytes(): Uint8Array {
    const n = this.varint();
    if (this.pos + n > this.b.length) throw new Error('truncated field');
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  skip(wt: number): void {
    if (wt === 0) this.varint();
    else if (wt === 1) this.pos += 8;
    else if (wt === 2) this.lenBytes();
    else if (wt === 5) this.pos += 4;
    else throw new Error(`unsupported wire type ${wt}`);
    if (this.pos > this.b.length) throw new Error('truncated field');
  }
}
