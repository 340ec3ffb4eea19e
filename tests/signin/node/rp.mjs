// An independent relying party: node's openid-client (v6) against this server, in two steps.
//   node rp.mjs start   -> prints {"url", "verifier", "state", "nonce"}: discovery, PKCE, the authorization URL
//   node rp.mjs finish  -> with CALLBACK, VERIFIER, STATE, NONCE: code → tokens (ID token checked) → refresh → userinfo
// Settings come from the environment: ISSUER, CLIENT_ID, CLIENT_SECRET (empty: a public client), REDIRECT_URI.
import * as client from 'openid-client'

const env = process.env
const secret = env.CLIENT_SECRET || undefined
const config = await client.discovery(new URL(env.ISSUER), env.CLIENT_ID, secret,
  secret ? undefined : client.None(), { execute: [client.allowInsecureRequests] })  // a secret: the default, client_secret_post

if (process.argv[2] === 'start') {
  const verifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const nonce = client.randomNonce()
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: env.REDIRECT_URI, scope: 'openid profile', state, nonce,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  })
  console.log(JSON.stringify({ url: url.href, verifier, state, nonce }))
} else {
  const tokens = await client.authorizationCodeGrant(config, new URL(env.CALLBACK), {
    pkceCodeVerifier: env.VERIFIER, expectedState: env.STATE, expectedNonce: env.NONCE, idTokenExpected: true,
  })
  const claims = tokens.claims()
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
  const userinfo = await client.fetchUserInfo(config, refreshed.access_token, claims.sub)
  console.log(JSON.stringify({
    sub: claims.sub, iss: claims.iss, aud: claims.aud, scope: tokens.scope,
    refreshed_sub: refreshed.claims()?.sub, rotated: refreshed.refresh_token !== tokens.refresh_token,
    userinfo,
  }))
}
