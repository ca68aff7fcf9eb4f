// A JSON batch codec keeping bigint and Uint8Array, for tests of the persistent queue that should
// not depend on the OTLP codec.
import { KeyValueList, type SignalData, type SignalType } from '../../../proto/src/model.ts';
import type { BatchCodec } from '../exporterhelper/index.ts';

export const jsonTestCodec: BatchCodec = {
  encode<S extends SignalType>(_signal: S, batch: SignalData[S]): Uint8Array {
    return Buffer.from(
      JSON.stringify(batch, (_k, v) => {
        if (typeof v === 'bigint') return { $b: v.toString() };
        if (v instanceof Uint8Array) return { $u: Buffer.from(v).toString('base64') };
        if (v instanceof KeyValueList) return { $kv: v.values };
        return v;
      }),
    );
  },
  decode<S extends SignalType>(_signal: S, bytes: Uint8Array): SignalData[S] {
    return JSON.parse(Buffer.from(bytes).toString('utf8'), (_k, v) => {
      if (v && typeof v === 'object' && !Array.isArray(v)) {
        if ('$b' in v) return BigInt(v.$b);
        if ('$u' in v) return new Uint8Array(Buffer.from(v.$u, 'base64'));
        if ('$kv' in v) return new KeyValueList(v.$kv);
      }
      return v;
    });
  },
};
