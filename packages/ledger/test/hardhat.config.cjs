// Hardhat 2 configuration for the in-process EVM used by the anchoring tests (no files are compiled by Hardhat;
// the contract is compiled with the solc npm package).
module.exports = { networks: { hardhat: { chainId: 31337, loggingEnabled: false } } };
