import path from 'node:path';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';

/**
 * History <-> proto3 JSON, the format `temporal workflow show --output json` and the UI's download use.
 *
 * Same as `historyToJSON`/`historyFromJSON` from `@temporalio/common/lib/proto-utils`, which fail here with
 * "type must be a Type": the install holds two copies of protobufjs 8 (under @temporalio/common and under
 * @temporalio/proto, because @grpc/proto-loader keeps protobufjs 7 at the top), and protojson checks
 * `instanceof Type` against its own copy. Taking protojson from the copy that built the proto types works
 * whatever the layout.
 */
type History = proto.temporal.api.history.v1.IHistory;

interface ProtoJson {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options?: { ignoreUnknownFields?: boolean }): unknown;
}

const protojson: ProtoJson = require(
  require.resolve('protobufjs/ext/protojson', { paths: [path.dirname(require.resolve('@temporalio/proto/package.json'))] }),
);
const historyType = (patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown }).lookupType('temporal.api.history.v1.History');

/** Pretty-printed proto3 JSON of a history (payload bytes base64, enums by name). */
export function historyToJSONText(history: History): string {
  return JSON.stringify(protojson.toJson(historyType, proto.temporal.api.history.v1.History.fromObject(history)), null, 2) + '\n';
}

/** A history from proto3 JSON text; unknown fields (a newer server's) are ignored. */
export function historyFromJSONText(text: string): History {
  const json = JSON.parse(text) as { events?: unknown };
  if (!json || !Array.isArray(json.events)) throw new TypeError('not a history: expected an object with an array of events');
  return protojson.fromJson(historyType, json, { ignoreUnknownFields: true }) as History;
}
