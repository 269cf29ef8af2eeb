// Models module
