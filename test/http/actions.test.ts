import { expect } from 'chai';
import { authorized } from '../../src/http/actions.js';

describe('dashboard action token (Authorization: Bearer)', () => {
  const token = 'Sesame-0123456789';

  it('takes the token as a bearer token, the scheme in any case', () => {
    expect(authorized(token, `Bearer ${token}`)).to.equal(true);
    expect(authorized(token, `bearer ${token}`)).to.equal(true);
  });

  it('refuses no header, another scheme, another token, a prefix or an extension of it', () => {
    for (const header of [undefined, '', token, `Basic ${token}`, 'Bearer ', 'Bearer sesame-0123456789', `Bearer ${token.slice(0, -1)}`, `Bearer ${token}0`, `Bearer ${token} ${token}`]) {
      expect(authorized(token, header), String(header)).to.equal(false);
    }
  });
});
