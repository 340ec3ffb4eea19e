"""Protocol constants: every URN and wire name the server speaks, written once.

RFC 6749 grant types, RFC 8693 token-exchange grant and token types. Import them from here;
never spell a URN again in another module.
"""

#: RFC 8693 §2.1: the token-exchange grant type.
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
#: RFC 6749 grant types (wire names).
REFRESH_TOKEN = "refresh_token"
CLIENT_CREDENTIALS = "client_credentials"
AUTHORIZATION_CODE = "authorization_code"

#: RFC 8693 §3 token type identifiers.
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
REFRESH_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:refresh_token"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"

#: The scope that lets a client call the management API.
MANAGE_SCOPE = "console:manage"
