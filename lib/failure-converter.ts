// Loaded by path inside the workflow sandbox too, so it may import only @temporalio/common.
import { DefaultFailureConverter } from '@temporalio/common';

/** Error messages and stack traces go into the encoded (encrypted) attributes, never into history in clear. */
export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
