import { Keyring } from '../../../lib/keyring';
import { PageTokenSigner } from './page-token';

describe('PageTokenSigner', () => {
  const signer = new PageTokenSigner(Keyring.forTests('page'));
  const serverToken = Buffer.from([1, 2, 3, 250, 251]);

  it('round-trips a server token for the same query', () => {
    const token = signer.sign("WorkflowType='onboardHost'", serverToken);
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(signer.verify("WorkflowType='onboardHost'", token)).toEqual(serverToken);
  });

  it('rejects tokens for another query, forged, tampered or from another keyring', () => {
    const token = signer.sign("WorkflowType='onboardHost'", serverToken);
    expect(signer.verify("WorkflowType='tunnelKeeper'", token)).toBeUndefined();
    expect(signer.verify("WorkflowType='onboardHost'", 'bm90LWEtdG9rZW4.AAAAAAAAAAAAAAAAAAAAAA')).toBeUndefined();
    expect(signer.verify("WorkflowType='onboardHost'", 'BBBB' + token.slice(4))).toBeUndefined();
    expect(signer.verify("WorkflowType='onboardHost'", `${token}.x`)).toBeUndefined();
    expect(new PageTokenSigner(Keyring.forTests('other')).verify("WorkflowType='onboardHost'", token)).toBeUndefined();
  });
});
